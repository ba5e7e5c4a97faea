"""Local fakes of the providers' usage APIs, following each provider's documented schema.

Standard library only (no Django): the same code serves the tests (sandbox.testing), the demo
(`python -m sandbox`) and the benchmarks. Each provider is one module mounted under
`/<slug>/…` by sandbox.app; test-only controls live under `/_sandbox/…`.
"""
