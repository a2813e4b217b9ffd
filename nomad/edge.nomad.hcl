# Edge nodes: on every node of the edge class, a NATS leaf node of the hub (its own
# JetStream domain edge-<name>) and an edge gateway beside it, in one group, so they
# share the node and the gateway reaches its leaf on loopback.
#
# Each edge node has the client meta edgehook_edge = "<name>" (the edge's name, as given
# to `edgehook setup nats-config --role edge --name`) and a host volume
# "edgehook-edge-nats" for the edge's JetStream store, which holds accepted events while
# the link to the hub is down. The edges' configs live in the Nomad Variable
# nomad/jobs/edgehook-edge/edge/nats, one item per edge name; the gateways' NATS
# passwords in nomad/jobs/edgehook-edge/edge/gateway, one item per edge name, which
# only the gateway task reads. The gateway holds no Vault token and no admin token.

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "datacenters with edge nodes"
}

variable "edge_node_class" {
  type        = string
  default     = "edge"
  description = "node class of the edge nodes"
}

variable "edgehook_artifact" {
  type        = string
  description = "URL of an archive (.tar.gz) holding the edgehook binary for linux/amd64 at its top; Nomad unpacks it into local/"
}

variable "gateway_port" {
  type        = number
  default     = 8080
  description = "port tenants send events to on each edge node"
}

variable "nats_version" {
  type        = string
  default     = "2.15.2"
  description = "nats-server release to download (the one the Makefile pins)"
}

variable "nats_artifact" {
  type        = string
  default     = ""
  description = "URL of a nats-server release archive (default: the GitHub release of nats_version for linux/amd64)"
}

job "edgehook-edge" {
  type        = "system"
  datacenters = var.datacenters

  constraint {
    attribute = "${node.class}"
    value     = var.edge_node_class
  }
  constraint {
    attribute = "${meta.edgehook_edge}"
    operator  = "is_set"
  }

  # One edge at a time; a new version whose gateway does not become ready within the
  # deadline fails the update (system jobs have no auto-revert: run the previous
  # version again, `nomad job revert edgehook-edge <version>`).
  update {
    max_parallel     = 1
    health_check     = "checks"
    min_healthy_time = "15s"
    healthy_deadline = "3m"
    stagger          = "15s"
  }

  group "edge" {
    restart {
      attempts = 10
      interval = "30m"
      delay    = "10s"
      mode     = "delay"
    }

    volume "jetstream" {
      type      = "host"
      source    = "edgehook-edge-nats"
      read_only = false
    }

    network {
      port "http" {
        static = var.gateway_port
      }
      # The leaf listens on loopback only: the gateway beside it is its one client.
      port "nats" {
        static = 4222
      }
      port "monitor" {
        static = 8222
      }
    }

    service {
      provider = "nomad"
      name     = "edgehook-gateway"
      port     = "http"
      task     = "gateway"

      # Ready while the gateway can accept events: its leaf answers, also while the
      # link to the hub is down (see README, Watching a link).
      check {
        name     = "ready"
        type     = "http"
        path     = "/readyz"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "nats" {
      driver = "exec"

      lifecycle {
        hook    = "prestart"
        sidecar = true
      }

      artifact {
        source      = var.nats_artifact != "" ? var.nats_artifact : "https://github.com/nats-io/nats-server/releases/download/v${var.nats_version}/nats-server-v${var.nats_version}-linux-amd64.tar.gz"
        destination = "local/nats"
      }

      config {
        command = "local/nats/nats-server-v${var.nats_version}-linux-amd64/nats-server"
        args    = ["-c", "secrets/nats.conf"]
      }

      volume_mount {
        volume      = "jetstream"
        destination = "/data"
      }

      # This edge's config, chosen by the node's edgehook_edge meta. A changed one is
      # reloaded in place: SIGHUP. An edge without one fails to start, saying so.
      template {
        destination   = "secrets/nats.conf"
        perms         = "0600"
        change_mode   = "signal"
        change_signal = "SIGHUP"
        data          = <<-EOT
        {{- $conf := "" -}}
        {{- with nomadVar "nomad/jobs/edgehook-edge/edge/nats" -}}
        {{- range $edge, $text := . -}}
        {{- if eq $edge (env "meta.edgehook_edge") -}}{{- $conf = print $text -}}{{- end -}}
        {{- end -}}
        {{- end -}}
        {{- if $conf -}}{{- $conf -}}{{- else -}}
        include "no config for this edge: put the item named after its meta edgehook_edge into nomad/jobs/edgehook-edge/edge/nats"
        {{- end }}
        EOT
      }

      kill_timeout = "30s"

      # Sizing (README, "Deploying with Nomad", Sizing): the edge's server stores what
      # its one gateway ingests, a share of the 72 us of CPU per event the whole
      # ingest path took in `edgehook bench --scenario ingest`.
      resources {
        cpu    = 1000
        memory = 512
      }
    }

    task "gateway" {
      driver = "exec"

      artifact {
        source      = var.edgehook_artifact
        destination = "local"
      }

      config {
        command = "local/edgehook"
        args    = ["gateway"]
      }

      env {
        EDGEHOOK_EDGE      = "${meta.edgehook_edge}"
        EDGEHOOK_HTTP_ADDR = "${NOMAD_ADDR_http}"
        EDGEHOOK_NATS_URL  = "nats://127.0.0.1:${NOMAD_PORT_nats}"
        EDGEHOOK_NATS_USER = "gateway"
        EDGEHOOK_LOG_LEVEL = "info"
      }

      # The gateway's NATS password on this edge's server (the item named after the
      # edge), from a Nomad Variable only this task reads. The gateway reads it at
      # start, so a rotated one restarts it. An edge without an item renders a line
      # that is no KEY=value, so the task fails to start, saying what is missing.
      template {
        destination          = "secrets/nats.env"
        env                  = true
        perms                = "0600"
        error_on_missing_key = true
        change_mode          = "restart"
        splay                = "30s"
        data                 = <<-EOT
        {{- $password := "" -}}
        {{- with nomadVar "nomad/jobs/edgehook-edge/edge/gateway" -}}
        {{- range $edge, $item := . -}}
        {{- if eq $edge (env "meta.edgehook_edge") -}}{{- $password = print $item -}}{{- end -}}
        {{- end -}}
        {{- end -}}
        {{- if $password -}}
        EDGEHOOK_NATS_PASSWORD={{ $password }}
        {{- else -}}
        no gateway password for this edge: put the item named after its meta edgehook_edge into nomad/jobs/edgehook-edge/edge/gateway
        {{- end }}
        EOT
      }

      kill_timeout = "20s"

      # Sizing (README, "Deploying with Nomad", Sizing): 72 us of CPU per accepted
      # event for gateway, JetStream and load generator together, so 1,000 MHz takes
      # a few thousand events a second; the whole ingest run peaked at 137 MB.
      resources {
        cpu    = 1000
        memory = 256
      }
    }
  }
}
