"""A HashiCorp-Vault-compatible KV version 2 read surface under `/vault/` (docs/vault.md).

Gateways that already read secrets from Vault (LiteLLM's Vault secret manager, External
Secrets Operator, Vault Agent, anything built on `hvac`) read Keyvault's provider keys here,
with the same proxy tokens, scopes, throttling, usage accounting and the same selectors and
retrieval service as the REST API: `views` is a thin translation into Vault's paths and JSON
envelopes, `responses` builds those envelopes, `errors` answers in Vault's error shape.
Read-only: writes answer 405.
"""
