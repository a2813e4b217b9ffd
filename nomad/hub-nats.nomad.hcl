# The hub: a 3-node NATS cluster with JetStream (domain "hub"), one node per host.
#
# Each host that runs a node has the client meta edgehook_hub_node = "hub-1" (or hub-2,
# hub-3), a host volume "edgehook-hub-nats" for its JetStream store, and the address
# `edgehook setup nats-config --role hub --peers` named for that node. The configs
# `setup nats-config` wrote are kept in the Nomad Variable
# nomad/jobs/edgehook-hub-nats/nats/nats, one item per node (hub-1, hub-2, hub-3): each
# allocation renders the one of the host it landed on, so a node's name, address and
# store stay together whichever allocation runs there.

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "datacenters the hub may run in"
}

variable "hub_nodes" {
  type        = number
  default     = 3
  description = "hub nodes: as many as `setup nats-config --role hub --peers` listed"
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

job "edgehook-hub-nats" {
  type        = "service"
  datacenters = var.datacenters

  # Every node on its own host, and only on hosts prepared for one.
  constraint {
    operator = "distinct_hosts"
    value    = "true"
  }
  constraint {
    attribute = "${meta.edgehook_hub_node}"
    operator  = "is_set"
  }

  # One node at a time, and the next only once the last one is back in the cluster
  # with JetStream current (its /healthz check), so the cluster keeps its quorum. No
  # auto-revert: a newer nats-server may have upgraded the store, which an older one
  # must not be started on; a failed update stops, for an operator to decide.
  update {
    max_parallel      = 1
    health_check      = "checks"
    min_healthy_time  = "30s"
    healthy_deadline  = "5m"
    progress_deadline = "15m"
    auto_revert       = false
    stagger           = "30s"
  }

  group "nats" {
    count = var.hub_nodes

    # A node's store is on its host: it is restarted there, never moved.
    reschedule {
      attempts  = 0
      unlimited = false
    }
    restart {
      attempts = 10
      interval = "30m"
      delay    = "15s"
      mode     = "delay"
    }

    volume "jetstream" {
      type      = "host"
      source    = "edgehook-hub-nats"
      read_only = false
    }

    network {
      port "client" {
        static = 4222
      }
      port "cluster" {
        static = 6222
      }
      port "leaf" {
        static = 7422
      }
      port "monitor" {
        static = 8222
      }
    }

    service {
      provider = "nomad"
      name     = "edgehook-hub-nats"
      port     = "client"
      task     = "nats"

      # nats-server's own health endpoint: 200 once the node serves JetStream.
      check {
        name     = "jetstream"
        type     = "http"
        port     = "monitor"
        path     = "/healthz"
        interval = "10s"
        timeout  = "3s"
      }
    }
    service {
      provider = "nomad"
      name     = "edgehook-hub-leaf"
      port     = "leaf"
      task     = "nats"
    }

    task "nats" {
      driver = "exec"

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

      # The node's config (users with bcrypt hashes, route and leaf passwords). A new
      # one (a user added, a password rotated) is reloaded in place: SIGHUP. A node
      # without one renders an include of a file that cannot exist, so nats-server
      # refuses to start, saying what is missing, rather than run without users.
      template {
        destination   = "secrets/nats.conf"
        perms         = "0600"
        change_mode   = "signal"
        change_signal = "SIGHUP"
        data          = <<-EOT
        {{- $conf := "" -}}
        {{- with nomadVar "nomad/jobs/edgehook-hub-nats/nats/nats" -}}
        {{- range $node, $text := . -}}
        {{- if eq $node (env "meta.edgehook_hub_node") -}}{{- $conf = print $text -}}{{- end -}}
        {{- end -}}
        {{- end -}}
        {{- if $conf -}}{{- $conf -}}{{- else -}}
        include "no config for this node: put the item named after its meta edgehook_hub_node into nomad/jobs/edgehook-hub-nats/nats/nats"
        {{- end }}
        EOT
      }

      # nats-server shuts down cleanly on SIGTERM and its clients reconnect to the
      # other nodes. (Its gentler lame duck mode, SIGUSR2, takes 2 minutes, longer than
      # the 30s Nomad clients allow a task by default, max_kill_timeout.)
      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

      # Sizing (README, "Deploying with Nomad", Sizing): a whole system in one process,
      # JetStream included, spent 72 us of CPU per ingested event and 105 us per
      # delivered one (`edgehook bench --scenario ingest|deliver`), so 2,000 MHz (about
      # a core) carries well over the 10,000 events a second of the deliver target;
      # JetStream's file store caches what it can in memory.
      resources {
        cpu    = 2000
        memory = 2048
      }
    }
  }
}
