"""The Acoustic Connect stand-in: GraphQL over HTTP, its store, exports, faults and public keys."""
