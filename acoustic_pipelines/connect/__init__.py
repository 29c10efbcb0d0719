"""Acoustic Connect side: the GraphQL schema we use, the client, signal and export rules, SFTP."""
