// An object assert that fails.
{
  assert std.length(self.name) <= 10 : 'name too long: ' + self.name,
  name: 'a-name-that-is-too-long',
}
