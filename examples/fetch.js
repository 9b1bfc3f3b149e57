// Query taskql from a browser or Node 18+ with plain fetch; no GraphQL library needed.
// `token` is the JWT from your auth service (Better Auth: authClient.token()).

export async function taskql(token, query, variables = {}, url = "http://127.0.0.1:8000/graphql") {
  const response = await fetch(url, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      Accept: "application/graphql-response+json, application/json",
      Authorization: `Bearer ${token}`,
    },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors) {
    // extensions.code: UNAUTHENTICATED, SERVICE_UNAVAILABLE (retry), GRAPHQL_VALIDATION_FAILED...
    const [first] = body.errors;
    throw new Error(`${first.extensions?.code}: ${first.message}`);
  }
  return body.data;
}

// Example: create a task, then list them. Expected failures come back as userErrors.
export async function demo(token) {
  const created = await taskql(
    token,
    `mutation Create($title: String!) {
       createTask(input: { title: $title }) { task { id title } userErrors { field message code } }
     }`,
    { title: "Try taskql" },
  );
  console.log(created.createTask);
  const { tasks } = await taskql(token, "query MyTasks { tasks(first: 20) { nodes { id title completed } } }");
  console.log(tasks.nodes);
}
