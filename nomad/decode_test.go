package nomad

import (
	"strings"
	"testing"
	"time"
)

const decodeJob = `
variable "n" {
  type    = number
  default = 2
}
variable "dcs" {
  type    = list(string)
  default = ["a"]
}

job "demo" {
  datacenters = var.dcs
  meta {
    owner = "ops"
  }
  update {
    max_parallel     = 1
    min_healthy_time = "15s"
  }
  group "g" {
    count = var.n
    volume "data" {
      type   = "host"
      source = "demo-data"
    }
    network {
      port "http" {
        static = 8080
      }
      port "metrics" {}
    }
    task "t" {
      driver = "exec"
      config {
        command = "local/demo"
        args    = ["serve", "--port", "${NOMAD_PORT_http}"]
      }
      env {
        WHERE = "${node.unique.name} in ${node.datacenter}, ${meta.rack}"
        N     = var.n
      }
      kill_timeout = "20s"
    }
  }
}
`

// TestDecodeNomadSemantics: variables, labels, free-form blocks, durations, Nomad's
// runtime interpolations and static ports decode as Nomad reads them.
func TestDecodeNomadSemantics(t *testing.T) {
	job, err := Parse("demo.nomad.hcl", []byte(decodeJob), map[string]string{"n": "3"})
	if err != nil {
		t.Fatal(err)
	}
	g := job.TaskGroups[0]
	task := g.Tasks[0]
	switch {
	case deref(job.ID) != "demo" || deref(job.Name) != "demo":
		t.Errorf("job id %q name %q, want demo", deref(job.ID), deref(job.Name))
	case len(job.Datacenters) != 1 || job.Datacenters[0] != "a":
		t.Errorf("datacenters %v", job.Datacenters)
	case job.Meta["owner"] != "ops":
		t.Errorf("meta %v", job.Meta)
	case deref(job.Update.MinHealthyTime) != 15*time.Second:
		t.Errorf("min_healthy_time %v", deref(job.Update.MinHealthyTime))
	case deref(g.Name) != "g" || deref(g.Count) != 3:
		t.Errorf("group %q count %d, want g and the -var's 3", deref(g.Name), deref(g.Count))
	case g.Volumes["data"] == nil || g.Volumes["data"].Name != "data" || g.Volumes["data"].Source != "demo-data":
		t.Errorf("volumes %+v", g.Volumes)
	case deref(task.KillTimeout) != 20*time.Second:
		t.Errorf("kill_timeout %v", deref(task.KillTimeout))
	case task.Env["WHERE"] != "${node.unique.name} in ${node.datacenter}, ${meta.rack}":
		t.Errorf("runtime interpolations not kept: %q", task.Env["WHERE"])
	case task.Env["N"] != "3":
		t.Errorf("env N %q", task.Env["N"])
	}
	if args, _ := task.Config["args"].([]any); len(args) != 3 || args[2] != "${NOMAD_PORT_http}" {
		t.Errorf("config args %#v", task.Config["args"])
	}
	n := g.Networks[0]
	if len(n.ReservedPorts) != 1 || n.ReservedPorts[0].Label != "http" || n.ReservedPorts[0].Value != 8080 ||
		len(n.DynamicPorts) != 1 || n.DynamicPorts[0].Label != "metrics" {
		t.Errorf("ports: reserved %+v dynamic %+v, want http static and metrics dynamic", n.ReservedPorts, n.DynamicPorts)
	}
}

// TestDecodeRefusesWhatNomadRefuses: each malformed job is an error naming the fault.
func TestDecodeRefusesWhatNomadRefuses(t *testing.T) {
	for _, c := range []struct{ name, old, new, want string }{
		{"two update blocks", "  update {", "  update {\n    max_parallel = 2\n  }\n  update {", "Duplicate update block"},
		{"two volumes of one name", `    network {`, "    volume \"data\" {\n      type = \"host\"\n    }\n    network {", `"data" is already defined`},
		{"index into a runtime value", `${meta.rack}`, `${meta["rack"]}`, "Unsupported runtime interpolation"},
		{"undefined variable", "var.n\n    volume", "var.m\n    volume", "Unsupported attribute"},
		{"a fraction where a count goes", `default = 2`, `default = 2.5`, "whole number"},
		{"a second job", "job \"demo\" {", "job \"other\" {}\njob \"demo\" {", "exactly one job block"},
		{"a required attribute missing", `      driver = "exec"`, "      driver = \"exec\"\n      lifecycle {\n        sidecar = true\n      }", `"hook" is required`},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := strings.Replace(decodeJob, c.old, c.new, 1)
			if src == decodeJob {
				t.Fatalf("no %q to change", c.old)
			}
			_, err := Parse("demo.nomad.hcl", []byte(src), nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%v, want an error with %q", err, c.want)
			}
		})
	}
}
