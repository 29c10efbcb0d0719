"""createSignals: signal content rules, signal rules, pushes, their ledger, the batch sender and
rejected signals."""
