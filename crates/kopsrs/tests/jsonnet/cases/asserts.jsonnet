// Asserts that hold, in objects and expressions.
local port(n) = assert n > 0 && n < 65536 : 'port out of range'; n;
{
  assert self.replicas >= 1 : 'replicas must be positive',
  replicas: 2,
  ports: [port(80), port(443)],
  checked: std.assertEqual([1, 2], std.sort([2, 1])),
}
