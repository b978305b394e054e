// Numbers and strings as C++ jsonnet writes them.
{
  ints: [0, -0, 1, -1, 42, 1e6, 9007199254740993, 1e100, -2e22],
  fractions: [0.1, 0.5, 1 / 3, 2 / 3, 1e-7, 1.5e-5, 123456.789, 3.14159265358979, 1e21 + 0.5, 0.000123],
  tiny: [5e-324, 2.2250738585072014e-308],
  strings: ['plain', 'quote " and \\ backslash', 'tab\tnew\nline', 'bell \u0007 del \u007f nel \u0085', 'é ü ß 中文 😀', ''],
  empty: { obj: {}, arr: [], nested: { a: [{}] } },
  keys: { b: 1, a: 2, B: 3, _: 4, '10': 5, '9': 6, 'é': 7, '😀': 8 },
  bools: [true, false, null],
}
