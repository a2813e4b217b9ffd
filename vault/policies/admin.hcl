# edgehook-admin: the admin API. It writes tenants' webhook configuration (target URL
# and signing secrets) and may list and delete it; nothing else in Vault.

path "secret/data/edgehook/webhook-config/*" {
  capabilities = ["create", "update", "read", "delete"]
}

path "secret/metadata/edgehook/webhook-config/*" {
  capabilities = ["list", "read", "delete"]
}
