# The admin API (`edgehook admin`), on its own listener: it writes tenants' identities
# as the NATS user admin (password in the Nomad Variable
# nomad/jobs/edgehook-admin/admin/admin, item nats_password) and their webhook
# configuration in Vault, with the token Nomad's workload identity obtains through the
# JWT role edgehook-admin. Its bearer token is the item admin_token of the same Nomad
# Variable.

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "datacenters the admin API may run in"
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
  description = "Vault's address, as the admin API reaches it: https://vault.example:8200"
}

variable "admin_count" {
  type        = number
  default     = 1
  description = "admin API allocations"
}

variable "admin_port" {
  type        = number
  default     = 8081
  description = "port of the admin API (and operator console) on its node"
}

job "edgehook-admin" {
  type        = "service"
  datacenters = var.datacenters

  update {
    max_parallel      = 1
    health_check      = "checks"
    min_healthy_time  = "10s"
    healthy_deadline  = "3m"
    progress_deadline = "10m"
    auto_revert       = true
  }

  group "admin" {
    count = var.admin_count

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
        static = var.admin_port
      }
    }

    service {
      provider = "nomad"
      name     = "edgehook-admin"
      port     = "http"
      task     = "admin"

      check {
        name     = "ready"
        type     = "http"
        path     = "/readyz"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "admin" {
      driver = "exec"

      artifact {
        source      = var.edgehook_artifact
        destination = "local"
      }

      config {
        command = "local/edgehook"
        args    = ["admin"]
      }

      vault {
        role        = "edgehook-admin"
        env         = false
        change_mode = "noop"
      }

      env {
        EDGEHOOK_ADMIN_ADDR = "${NOMAD_ADDR_http}"
        EDGEHOOK_NATS_URL   = var.hub_nats_url
        EDGEHOOK_NATS_USER  = "admin"
        VAULT_ADDR          = var.vault_addr
        VAULT_TOKEN_FILE    = "${NOMAD_SECRETS_DIR}/vault_token"
      }

      # Its NATS password and its bearer token, read at start: a rotated one restarts
      # the task.
      template {
        destination          = "secrets/admin.env"
        env                  = true
        perms                = "0600"
        # A missing item fails the render instead of rendering "<no value>".
        error_on_missing_key = true
        change_mode          = "restart"
        data                 = <<-EOT
        {{ with nomadVar "nomad/jobs/edgehook-admin/admin/admin" }}
        EDGEHOOK_NATS_PASSWORD={{ .nats_password }}
        EDGEHOOK_ADMIN_TOKEN={{ .admin_token }}
        {{ end }}
        EOT
      }

      kill_timeout = "15s"

      # Tenant changes are rare: a small allocation.
      resources {
        cpu    = 300
        memory = 128
      }
    }
  }
}
