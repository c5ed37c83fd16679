# The seed rule (examples/seed/policy.yaml) written by hand for Gatekeeper, as a user would
# without apart: the peer that `cargo xtask bench` sets beside apart's generated Rego. Only the
# StatefulSet shape and this one rule: spire-server in kube-system or cilium-spire must have a
# preferred (or required) podAntiAffinity term on the hostname whose selector names the Flux
# label and whose namespaces reach flux-system.
package seed

template := input.review.object.spec.template

subject if {
	input.review.object.kind == "StatefulSet"
	input.review.object.metadata.namespace in {"kube-system", "cilium-spire"}
	template.metadata.labels.app == "spire-server"
}

anti := object.get(template, ["spec", "affinity", "podAntiAffinity"], {})

terms contains w.podAffinityTerm if {
	some w in object.get(anti, "preferredDuringSchedulingIgnoredDuringExecution", [])
}

terms contains t if {
	some t in object.get(anti, "requiredDuringSchedulingIgnoredDuringExecution", [])
}

covers(t) if {
	t.topologyKey == "kubernetes.io/hostname"
	t.labelSelector.matchLabels["app.kubernetes.io/part-of"] == "flux"
	"flux-system" in object.get(t, "namespaces", [])
}

covers(t) if {
	t.topologyKey == "kubernetes.io/hostname"
	t.labelSelector.matchLabels["app.kubernetes.io/part-of"] == "flux"
	t.namespaceSelector == {}
}

violation contains {"msg": "spire-server must prefer nodes without Flux controllers"} if {
	subject
	not any_covers
}

any_covers if {
	some t in terms
	covers(t)
}
