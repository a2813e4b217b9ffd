# edgehook-receiver: the verifying webhook receiver. It reads a tenant's signing secrets
# to verify webhooks; it can write nothing and read nothing else.

path "secret/data/edgehook/webhook-config/*" {
  capabilities = ["read"]
}
