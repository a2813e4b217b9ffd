# edgehook-worker: delivery workers. They read a tenant's webhook configuration to sign
# and send webhooks; they can write nothing and read nothing else.

path "secret/data/edgehook/webhook-config/*" {
  capabilities = ["read"]
}
