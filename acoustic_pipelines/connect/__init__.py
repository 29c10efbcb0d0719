"""Acoustic Connect side: the GraphQL schema we use, the client, signal and export rules, SFTP.

Import from the modules themselves (`acoustic_pipelines.connect.client`, `.sftp`,
`.signals.content`, `.exports.ledger`, …): the packages import none of them, so loading one (the
config loads `signals.content`) does not pull in the GraphQL client and its HTTP stack.
"""
