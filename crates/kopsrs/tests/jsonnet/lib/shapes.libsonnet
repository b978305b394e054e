// A small library imported through -J: defaults refined with +:, hidden helpers.
{
  base(name):: {
    local this = self,
    name: name,
    labels: { app: name },
    tags:: ['base'],
    describe:: '%s (%d labels)' % [this.name, std.length(std.objectFields(this.labels))],
  },
  sized(name, size):: self.base(name) {
    size: size,
    labels+: { size: std.toString(size) },
    tags+:: ['sized'],
  },
}
