// External variables (-V, --ext-code) and top-level arguments (-A, --tla-code).
function(cluster, replicas=1, extra={})
  {
    cluster: cluster,
    replicas: replicas,
    extra: extra,
    env: std.extVar('env'),
    settings: std.extVar('settings'),
    name: '%s-%s' % [std.extVar('env'), cluster],
  }
