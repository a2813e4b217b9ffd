# Delivery workers and the DLQ processor, near the hub.
#
# The worker reads webhook configuration from Vault with the token Nomad's workload
# identity obtains through the JWT role edgehook-worker (`edgehook setup vault
# --nomad-jwks-url ...` creates it, bound to this job's id). The DLQ processor holds no
# Vault token. Each task's NATS password is in its own Nomad Variable,
# nomad/jobs/edgehook-worker/<group>/<task> (item nats_password), which no other task
# reads.

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "datacenters the workers may run in (near the hub)"
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
  description = "Vault's address, as the workers reach it: https://vault.example:8200"
}

variable "worker_count" {
  type        = number
  default     = 2
  description = "worker allocations"
}

variable "dlq_count" {
  type        = number
  default     = 1
  description = "DLQ processor allocations (they share the dlq consumer)"
}

variable "worker_concurrency" {
  type        = number
  default     = 256
  description = "deliveries in flight per worker (EDGEHOOK_CONCURRENCY)"
}

job "edgehook-worker" {
  type        = "service"
  datacenters = var.datacenters

  # Rolling, one allocation at a time, healthy once /readyz passes (NATS and Vault
  # answer); a version that does not become healthy is rolled back.
  update {
    max_parallel      = 1
    health_check      = "checks"
    min_healthy_time  = "15s"
    healthy_deadline  = "3m"
    progress_deadline = "10m"
    auto_revert       = true
  }

  group "worker" {
    count = var.worker_count

    spread {
      attribute = "${node.unique.id}"
    }
    restart {
      attempts = 10
      interval = "30m"
      delay    = "10s"
      mode     = "delay"
    }

    network {
      port "metrics" {}
    }

    service {
      provider = "nomad"
      name     = "edgehook-worker"
      port     = "metrics"
      task     = "worker"

      check {
        name     = "ready"
        type     = "http"
        path     = "/readyz"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "worker" {
      driver = "exec"

      artifact {
        source      = var.edgehook_artifact
        destination = "local"
      }

      config {
        command = "local/edgehook"
        args    = ["worker"]
      }

      # Nomad logs in with the job's workload identity and writes the token to
      # secrets/vault_token, renewing it; the worker reads that file again whenever its
      # token stops being valid, so a new token needs no restart (change_mode noop), and
      # none is put in the environment (VAULT_TOKEN and VAULT_TOKEN_FILE exclude each
      # other).
      vault {
        role        = "edgehook-worker"
        env         = false
        change_mode = "noop"
      }

      env {
        EDGEHOOK_METRICS_ADDR = "${NOMAD_ADDR_metrics}"
        EDGEHOOK_NATS_URL     = var.hub_nats_url
        EDGEHOOK_NATS_USER    = "worker"
        EDGEHOOK_CONCURRENCY  = var.worker_concurrency
        VAULT_ADDR            = var.vault_addr
        VAULT_TOKEN_FILE      = "${NOMAD_SECRETS_DIR}/vault_token"
      }

      # The worker's NATS password; it is read at start, so a rotated one restarts the
      # task (the splay keeps the workers from restarting all at once).
      template {
        destination          = "secrets/nats.env"
        env                  = true
        perms                = "0600"
        # A missing item fails the render instead of rendering "<no value>".
        error_on_missing_key = true
        change_mode          = "restart"
        splay                = "1m"
        data                 = <<-EOT
        {{ with nomadVar "nomad/jobs/edgehook-worker/worker/worker" }}EDGEHOOK_NATS_PASSWORD={{ .nats_password }}{{ end }}
        EOT
      }

      # In-flight deliveries finish or are handed back within EDGEHOOK_DRAIN_TIMEOUT
      # (15s) of SIGTERM.
      kill_timeout = "25s"

      # Sizing (README, "Deploying with Nomad", Sizing): 105 us of CPU per delivered
      # event for worker, JetStream and receiver together (`edgehook bench --scenario
      # deliver`), so 1,000 MHz carries a few thousand deliveries a second; the whole
      # in-process system peaked at 217 MB with a 25,000-event backlog.
      resources {
        cpu        = 1000
        memory     = 256
        memory_max = 512
      }
    }
  }

  group "dlq" {
    count = var.dlq_count

    restart {
      attempts = 10
      interval = "30m"
      delay    = "10s"
      mode     = "delay"
    }

    network {
      port "metrics" {}
    }

    service {
      provider = "nomad"
      name     = "edgehook-dlq"
      port     = "metrics"
      task     = "dlq"

      check {
        name     = "ready"
        type     = "http"
        path     = "/readyz"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "dlq" {
      driver = "exec"

      artifact {
        source      = var.edgehook_artifact
        destination = "local"
      }

      config {
        command = "local/edgehook"
        args    = ["dlq"]
      }

      env {
        EDGEHOOK_METRICS_ADDR = "${NOMAD_ADDR_metrics}"
        EDGEHOOK_NATS_URL     = var.hub_nats_url
        EDGEHOOK_NATS_USER    = "dlq"
      }

      template {
        destination          = "secrets/nats.env"
        env                  = true
        perms                = "0600"
        # A missing item fails the render instead of rendering "<no value>".
        error_on_missing_key = true
        change_mode          = "restart"
        data                 = <<-EOT
        {{ with nomadVar "nomad/jobs/edgehook-worker/dlq/dlq" }}EDGEHOOK_NATS_PASSWORD={{ .nats_password }}{{ end }}
        EOT
      }

      kill_timeout = "20s"

      # Dead letters are rare next to deliveries: a small share of a worker's size.
      resources {
        cpu    = 300
        memory = 128
      }
    }
  }
}
