// prod.example.com: three replicas, and a worker only production runs.
local kube = import 'kube.libsonnet';
local stack = (import 'common/stack.libsonnet')('prod.example.com', replicas=3);

stack {
  web+: { deployment+: { spec+: { replicas: 4 } } },
  worker: kube.Deployment('worker', 'shop') {
    containers_:: {
      worker: kube.Container('worker') {
        image: 'registry.example.com/shop/worker:1.0.0',
        env_:: { QUEUE: 'orders' },
      },
    },
  },
}
