// A runtime error deep in a function: the location and the stack.
local check(replicas) =
  if replicas < 1 then error 'replicas must be at least 1, got %d' % replicas
  else replicas;
local deployment(name, replicas) = { name: name, replicas: check(replicas) };
{
  web: deployment('web', 0),
}
