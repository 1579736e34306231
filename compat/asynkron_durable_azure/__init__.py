"""asynkron-durable-azure: Azure Durable Functions Python apps on the asynkron-durable core.

The shapes of PyPI's `azure-functions-durable` (orchestration and entity contexts, `df.DFApp` and
`df.Orchestrator.create` apps, the out-of-proc JSON protocol) implemented on our engine and stores.
"""
