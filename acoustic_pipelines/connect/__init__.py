"""Acoustic Connect side: the GraphQL schema we use, the client, signal and export rules, SFTP.

Import from the modules themselves (`acoustic_pipelines.connect.client`, `.signals`, `.exports`,
`.export_ledger`, `.sftp`, …): the package imports none of them, so loading one (the config
loads `signals`) does not pull in the GraphQL client and its HTTP stack.
"""
