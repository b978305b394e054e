// kube.libsonnet: constructors for the Kubernetes kinds a service needs, written for kopsrs's
// example. Each returns an object to refine with `+:`; lists that are really maps keyed by
// name (containers, env, ports) are set through hidden `*_` maps, so refinements merge by key.
{
  local kube = self,

  // The common frame: apiVersion, kind, name, the name label, and the namespace when given.
  Object(apiVersion, kind, name, namespace=null):: {
    apiVersion: apiVersion,
    kind: kind,
    metadata: {
      name: name,
      labels: { 'app.kubernetes.io/name': name },
    } + (if namespace == null then {} else { namespace: namespace }),
  },

  // A map as a list of {name: key} + value, in key order.
  named(map):: [{ name: k } + map[k] for k in std.objectFields(map)],

  Namespace(name):: kube.Object('v1', 'Namespace', name),

  ConfigMap(name, namespace):: kube.Object('v1', 'ConfigMap', name, namespace) {
    data: {},
    assert std.all([std.isString(v) for v in std.objectValues(self.data)]) :
           'ConfigMap %s: data values must be strings' % name,
  },

  ServiceAccount(name, namespace):: kube.Object('v1', 'ServiceAccount', name, namespace),

  Container(name):: {
    local container = self,
    name: name,
    image: error 'Container %s: image is required' % name,
    env_:: {},
    ports_:: {},
    env: [{ name: k, value: container.env_[k] } for k in std.objectFields(container.env_)],
    ports: kube.named({ [p]: { containerPort: container.ports_[p] } for p in std.objectFields(container.ports_) }),
    resources: {},
  },

  Deployment(name, namespace):: kube.Object('apps/v1', 'Deployment', name, namespace) {
    local deployment = self,
    containers_:: {},
    spec: {
      replicas: 1,
      // The selector is immutable: the name label only, so labels added later apply.
      selector: { matchLabels: { 'app.kubernetes.io/name': name } },
      template: {
        metadata: { labels: deployment.metadata.labels },
        spec: {
          containers: [
            deployment.containers_[k] { name: k }
            for k in std.objectFields(deployment.containers_)
          ],
        },
      },
    },
    assert std.length(self.containers_) > 0 : 'Deployment %s: no containers' % name,
  },

  // A Service in front of a Deployment: its selector and the ports of its containers.
  Service(name, namespace, deployment):: kube.Object('v1', 'Service', name, namespace) {
    spec: {
      selector: deployment.spec.selector.matchLabels,
      ports: [
        { name: p.name, port: p.containerPort, targetPort: p.name }
        for c in deployment.spec.template.spec.containers
        for p in c.ports
      ],
    },
  },

  PodDisruptionBudget(name, namespace, deployment):: kube.Object('policy/v1', 'PodDisruptionBudget', name, namespace) {
    spec: {
      selector: { matchLabels: deployment.spec.selector.matchLabels },
      maxUnavailable: 1,
    },
  },
}
