# The verifying webhook receiver: it checks incoming webhooks against the tenant's
# signing secrets, read from Vault with the token Nomad's workload identity obtains
# through the JWT role edgehook-receiver, and publishes verified ones to RECEIVED as the
# NATS user receiver (password in the Nomad Variable
# nomad/jobs/edgehook-receiver/receiver/receiver, item nats_password).

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "datacenters the receiver may run in"
}

variable "edgehook_artifact" {
  type        = string
  description = "URL of an archive (.tar.gz) holding the edgehook binary for linux/amd64 at its top; Nomad unpacks it into local/"
}

variable "hub_nats_url" {
  type        = string
  description = "the hub's NATS client URLs, comma-separated: nats://h1:4222,nats://h2:4222,nats://h3:4222"
}

variable "vault_addr" {
  type        = string
  description = "Vault's address, as the receivers reach it: https://vault.example:8200"
}

variable "receiver_count" {
  type        = number
  default     = 2
  description = "receiver allocations"
}

variable "receiver_port" {
  type        = number
  default     = 8090
  description = "port webhooks are POSTed to on each receiver's node"
}

job "edgehook-receiver" {
  type        = "service"
  datacenters = var.datacenters

  update {
    max_parallel      = 1
    health_check      = "checks"
    min_healthy_time  = "15s"
    healthy_deadline  = "3m"
    progress_deadline = "10m"
    auto_revert       = true
  }

  group "receiver" {
    count = var.receiver_count

    # A static port: one receiver per node.
    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }
    restart {
      attempts = 10
      interval = "30m"
      delay    = "10s"
      mode     = "delay"
    }

    network {
      port "http" {
        static = var.receiver_port
      }
    }

    service {
      provider = "nomad"
      name     = "edgehook-receiver"
      port     = "http"
      task     = "receiver"

      check {
        name     = "ready"
        type     = "http"
        path     = "/readyz"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "receiver" {
      driver = "exec"

      artifact {
        source      = var.edgehook_artifact
        destination = "local"
      }

      config {
        command = "local/edgehook"
        args    = ["receiver"]
      }

      # The token is in secrets/vault_token, renewed by Nomad and read again by the
      # receiver whenever it stops being valid: no restart for a new one.
      vault {
        role        = "edgehook-receiver"
        env         = false
        change_mode = "noop"
      }

      env {
        EDGEHOOK_RECEIVER_ADDR = "${NOMAD_ADDR_http}"
        EDGEHOOK_NATS_URL      = var.hub_nats_url
        EDGEHOOK_NATS_USER     = "receiver"
        VAULT_ADDR             = var.vault_addr
        VAULT_TOKEN_FILE       = "${NOMAD_SECRETS_DIR}/vault_token"
      }

      template {
        destination          = "secrets/nats.env"
        env                  = true
        perms                = "0600"
        # A missing item fails the render instead of rendering "<no value>".
        error_on_missing_key = true
        change_mode          = "restart"
        splay                = "30s"
        data                 = <<-EOT
        {{ with nomadVar "nomad/jobs/edgehook-receiver/receiver/receiver" }}EDGEHOOK_NATS_PASSWORD={{ .nats_password }}{{ end }}
        EOT
      }

      kill_timeout = "20s"

      # Sizing (README, "Deploying with Nomad", Sizing): the receiver verified 8,700
      # webhooks a second under direct load (the deliver benchmark's ceiling), on a
      # shared 2-core machine.
      resources {
        cpu    = 500
        memory = 256
      }
    }
  }
}
