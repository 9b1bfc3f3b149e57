// Apollo Client 4 with its persisted queries link, against a real taskql server.
//
// Usage: node apollo_persisted.mjs <command> <graphql url> <token>
//   manifest  print the Apollo persisted query manifest of KNOWN (what
//             @apollo/generate-persisted-query-manifest writes: the printed document and its
//             SHA-256, the hash the link sends)
//   run       run KNOWN twice and UNKNOWN once; print what the app saw and what went over the
//             wire, as JSON
// The link sends hashed queries with GET (useGETForHashedQueries), so both methods are used.
import { createHash } from "node:crypto";
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";
import { print } from "@apollo/client/utilities";
import { of } from "rxjs";

const [command, url, token] = process.argv.slice(2);
const sha256 = (text) => createHash("sha256").update(text).digest("hex");

const KNOWN = gql`
  query ListForApollo {
    tasks(first: 10) {
      totalCount
      nodes { id title }
    }
    taskCounts { all active }
  }
`;
const UNKNOWN = gql`
  query NeverRegistered {
    viewer { id }
  }
`;

if (command === "manifest") {
  // The document as the link hashes it: after the client's own transforms (the cache adds
  // __typename), which is why the manifest generator runs them too.
  let body;
  const capture = new ApolloLink((operation) => {
    body = print(operation.query);
    return of({ data: {} });
  });
  await new ApolloClient({ cache: new InMemoryCache(), link: capture })
    .query({ query: KNOWN, fetchPolicy: "no-cache" })
    .catch(() => {});
  console.log(JSON.stringify({
    format: "apollo-persisted-query-manifest",
    version: 1,
    operations: [{ id: sha256(body), name: "ListForApollo", type: "query", body }],
  }));
  process.exit(0);
}

// What went over the wire, per request: method, whether the document was sent, the status.
const wire = [];
async function recordingFetch(input, init = {}) {
  const target = new URL(typeof input === "string" ? input : input.url);
  const method = (init.method || "GET").toUpperCase();
  const body = typeof init.body === "string" ? JSON.parse(init.body) : {};
  const response = await fetch(input, init);
  wire.push({
    method,
    sentQuery: method === "GET" ? target.searchParams.has("query") : "query" in body,
    sentHash: method === "GET"
      ? target.searchParams.has("extensions")
      : Boolean(body.extensions && body.extensions.persistedQuery),
    status: response.status,
  });
  return response;
}

const client = new ApolloClient({
  cache: new InMemoryCache(),
  link: new PersistedQueryLink({ sha256, useGETForHashedQueries: true }).concat(
    new HttpLink({ uri: url, fetch: recordingFetch, headers: { authorization: `Bearer ${token}` } }),
  ),
});

async function attempt(query) {
  const before = wire.length;
  try {
    const result = await client.query({ query, fetchPolicy: "network-only" });
    return { data: result.data, error: null, requests: wire.slice(before) };
  } catch (error) {
    // A GraphQL error (CombinedGraphQLErrors) or a non-2xx response (ServerError, whose body
    // holds the GraphQL errors).
    let errors = error.errors;
    if (!errors && error.bodyText) {
      errors = JSON.parse(error.bodyText).errors;
    }
    const codes = (errors || []).map((e) => e.extensions && e.extensions.code);
    return { data: null, error: { name: error.name, codes }, requests: wire.slice(before) };
  }
}

const first = await attempt(KNOWN);
const second = await attempt(KNOWN);
const unknown = await attempt(UNKNOWN);
console.log(JSON.stringify({ first, second, unknown }));
