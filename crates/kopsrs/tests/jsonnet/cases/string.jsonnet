// -S: a string written raw.
std.join('\n', ['# generated', 'key = "value"', 'n = %d' % 3])
