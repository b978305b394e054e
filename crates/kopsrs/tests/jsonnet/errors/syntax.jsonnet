// A syntax error.
{
  a: 1,,
}
