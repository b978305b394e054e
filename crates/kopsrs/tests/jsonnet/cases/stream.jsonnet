// -y: a YAML stream of JSON documents.
[
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team' } },
  { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'team' }, data: { k: 'v' } },
]
