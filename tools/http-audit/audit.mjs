// Runs graphql-http's audit of the GraphQL-over-HTTP specification against the server
// at the URL given, prints every audit that is not "ok", and fails if there is one.
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs http://host:port/graphql');
  process.exit(2);
}
const results = await auditServer({ url });
const failed = results.filter((r) => r.status !== 'ok');
for (const r of failed) {
  console.log(`${r.status.toUpperCase()} ${r.id} ${r.name}: ${r.reason}`);
}
console.log(`graphql-http audit: ${results.length - failed.length} of ${results.length} ok`);
process.exit(failed.length === 0 ? 0 : 1);
