// Object inheritance: +:, super, hidden fields, self and $, late binding, and imports
// through -J (the test passes -J tests/jsonnet/lib).
local shapes = import 'shapes.libsonnet';
local motd = importstr 'motd.txt';

local Base = {
  kind: 'Base',
  spec: { replicas: 1, image: 'nginx' },
  hidden:: 'not output',
  visible::: 'forced visible',
  greeting:: 'hello ' + self.kind,
  message: self.greeting,
};

local Derived = Base {
  kind: 'Derived',
  spec+: { replicas: super.replicas + 2 },
  hidden+:: ' either',
  greeting:: super.greeting + '!',
  parentKind: super.kind,
  top: $.spec.image,
};

{
  base: Base,
  derived: Derived,
  withHidden: Derived.hidden,
  shape: shapes.sized('db', 3),
  describe: shapes.sized('db', 3).describe,
  tags: shapes.sized('db', 3).tags,
  motd: motd,
  comprehension: { [k]: std.length(k) for k in ['a', 'bb', 'ccc'] if k != 'bb' },
  arrayComprehension: [x * y for x in [1, 2] for y in [10, 20]],
  conditional: if std.length(motd) > 5 then 'long' else 'short',
  optional: { [if false then 'skipped']: 1, kept: 2 },
  objectLocal: { local two = 2, four: two * two },
  assert std.length(self.comprehension) == 2 : 'two keys',
}
