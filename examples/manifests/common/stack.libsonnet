// The stack every cluster runs: a namespace with a web front end and an API behind it. A
// cluster's main.jsonnet calls it with its own settings and refines the result.
local kube = import 'kube.libsonnet';

function(cluster, replicas=1, logLevel='info') {
  local ns = 'shop',

  namespace: kube.Namespace(ns) {
    metadata+: { labels+: { 'pod-security.kubernetes.io/enforce': 'baseline' } },
  },

  config: kube.ConfigMap('shop-config', ns) {
    data: { LOG_LEVEL: logLevel, CLUSTER: cluster },
  },

  api: {
    deployment: kube.Deployment('api', ns) {
      spec+: { replicas: replicas },
      containers_:: {
        api: kube.Container('api') {
          image: 'registry.example.com/shop/api:1.4.2',
          env_:: { LOG_LEVEL: logLevel },
          ports_:: { http: 8080 },
          resources: { requests: { cpu: '100m', memory: '128Mi' } },
        },
      },
    },
    service: kube.Service('api', ns, self.deployment),
    budget: kube.PodDisruptionBudget('api', ns, self.deployment),
  },

  web: {
    deployment: kube.Deployment('web', ns) {
      spec+: { replicas: replicas },
      containers_:: {
        web: kube.Container('web') {
          image: 'registry.example.com/shop/web:2.0.1',
          env_:: { API_URL: 'http://api.%s.svc:8080' % ns },
          ports_:: { http: 8000 },
        },
      },
    },
    service: kube.Service('web', ns, self.deployment),
  },
}
