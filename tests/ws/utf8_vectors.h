// The UTF-8 test vectors of the Autobahn TestSuite's cases 6.5.x to 6.23.x (taken from
// Markus Kuhn's UTF-8-test.txt), in Autobahn's order, with the case number each gets
// and whether it is valid UTF-8.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace reactor::ws::testing {

struct Utf8Vector {
  std::string id;     // "6.7.3"
  std::string group;  // Autobahn's sub-category title
  std::string bytes;
  bool valid;
};

inline std::string Hex(std::string_view hex) {
  auto v = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(v(hex[i]) * 16 + v(hex[i + 1])));
  return out;
}

inline std::vector<Utf8Vector> AutobahnUtf8Vectors() {
  struct Group {
    std::string title;
    std::vector<std::pair<bool, std::string>> cases;  // (valid, bytes)
  };
  std::vector<Group> groups;
  const std::string kosme = Hex("cebae1bdb9cf83cebcceb5");  // "κόσμε"

  groups.push_back({"Some valid UTF-8 sequences",
                    {{true, "hello\x24world"}, {true, "hello" + Hex("c2a2") + "world"},
                     {true, "hello" + Hex("e282ac") + "world"},
                     {true, "hello" + Hex("f0a4ada2") + "world"}, {true, kosme}}});
  {
    Group g{"All prefixes of a valid UTF-8 string that contains multi-byte code points", {}};
    // Code point boundaries of "κόσμε": after bytes 2, 5, 7, 9 and 11.
    for (size_t i = 1; i <= kosme.size(); ++i) {
      bool boundary = i == 2 || i == 5 || i == 7 || i == 9 || i == 11;
      g.cases.push_back({boundary, kosme.substr(0, i)});
    }
    groups.push_back(g);
  }
  groups.push_back({"First possible sequence of a certain length",
                    {{true, std::string(1, '\0')}, {true, Hex("c280")}, {true, Hex("e0a080")},
                     {true, Hex("f0908080")}}});
  groups.push_back({"First possible sequence length 5/6 (invalid codepoints)",
                    {{false, Hex("f888808080")}, {false, Hex("fc8480808080")}}});
  groups.push_back({"Last possible sequence of a certain length",
                    {{true, Hex("7f")}, {true, Hex("dfbf")}, {true, Hex("efbfbf")},
                     {true, Hex("f48fbfbf")}}});
  groups.push_back({"Last possible sequence length 4/5/6 (invalid codepoints)",
                    {{false, Hex("f7bfbfbf")}, {false, Hex("fbbfbfbfbf")}, {false, Hex("fdbfbfbfbfbf")}}});
  groups.push_back({"Other boundary conditions",
                    {{true, Hex("ed9fbf")}, {true, Hex("ee8080")}, {true, Hex("efbfbd")},
                     {true, Hex("f48fbfbf")}, {false, Hex("f4908080")}}});
  {
    Group g{"Unexpected continuation bytes",
            {{false, Hex("80")}, {false, Hex("bf")}, {false, Hex("80bf")}, {false, Hex("80bf80")},
             {false, Hex("80bf80bf")}, {false, Hex("80bf80bf80")}, {false, Hex("80bf80bf80bf")}}};
    std::string all;
    for (int b = 0x80; b < 0xbf; ++b) all.push_back(static_cast<char>(b));
    g.cases.push_back({false, all});
    groups.push_back(g);
  }
  {
    Group g{"Lonely start characters", {}};
    const int ranges[][2] = {{0xc0, 0xdf}, {0xe0, 0xef}, {0xf0, 0xf7}, {0xf8, 0xfb}, {0xfc, 0xfd}};
    for (const auto& r : ranges) {
      std::string s;
      for (int b = r[0]; b < r[1]; ++b) {
        s.push_back(static_cast<char>(b));
        s.push_back(' ');
      }
      g.cases.push_back({false, s});
    }
    groups.push_back(g);
  }
  const char* missing[] = {"c0", "e080", "f08080", "f8808080", "fc80808080",
                           "df", "efbf", "f7bfbf", "fbbfbfbf", "fdbfbfbfbf"};
  {
    Group g{"Sequences with last continuation byte missing", {}};
    for (const char* m : missing) g.cases.push_back({false, Hex(m)});
    groups.push_back(g);
  }
  {
    std::string all;
    for (const char* m : missing) all += Hex(m);
    groups.push_back({"Concatenation of incomplete sequences", {{false, all}}});
  }
  groups.push_back({"Impossible bytes", {{false, Hex("fe")}, {false, Hex("ff")}, {false, Hex("fefeffff")}}});
  groups.push_back({"Examples of an overlong ASCII character",
                    {{false, Hex("c0af")}, {false, Hex("e080af")}, {false, Hex("f08080af")},
                     {false, Hex("f8808080af")}, {false, Hex("fc80808080af")}}});
  groups.push_back({"Maximum overlong sequences",
                    {{false, Hex("c1bf")}, {false, Hex("e09fbf")}, {false, Hex("f08fbfbf")},
                     {false, Hex("f887bfbfbf")}, {false, Hex("fc83bfbfbfbf")}}});
  groups.push_back({"Overlong representation of the NUL character",
                    {{false, Hex("c080")}, {false, Hex("e08080")}, {false, Hex("f0808080")},
                     {false, Hex("f880808080")}, {false, Hex("fc8080808080")}}});
  groups.push_back({"Single UTF-16 surrogates",
                    {{false, Hex("eda080")}, {false, Hex("edadbf")}, {false, Hex("edae80")},
                     {false, Hex("edafbf")}, {false, Hex("edb080")}, {false, Hex("edbe80")},
                     {false, Hex("edbfbf")}}});
  {
    Group g{"Paired UTF-16 surrogates", {}};
    for (const char* hi : {"eda080", "edadbf", "edae80", "edafbf"}) {
      for (const char* lo : {"edb080", "edbfbf"}) g.cases.push_back({false, Hex(hi) + Hex(lo)});
    }
    groups.push_back(g);
  }
  {
    Group g{"Non-character code points (valid UTF-8)", {{true, Hex("efbfbe")}, {true, Hex("efbfbf")}}};
    for (const char* z1 : {"f0", "f1", "f2", "f3", "f4"}) {
      for (const char* z2 : {"8f", "9f", "af", "bf"}) {
        if (std::string(z1) == "f4" && std::string(z2) != "8f") continue;  // above U+10FFFF
        for (const char* z3 : {"be", "bf"}) {
          std::string hex = std::string(z1) + z2 + "bf" + z3;
          if (hex == "f08fbfbe" || hex == "f08fbfbf") continue;  // overlong
          g.cases.push_back({true, Hex(hex)});
        }
      }
    }
    groups.push_back(g);
  }
  groups.push_back({"Unicode specials (i.e. replacement char)",
                    {{true, Hex("efbfb9")}, {true, Hex("efbfba")}, {true, Hex("efbfbb")},
                     {true, Hex("efbfbc")}, {true, Hex("efbfbd")}, {true, Hex("efbfbe")},
                     {true, Hex("efbfbf")}}});

  std::vector<Utf8Vector> out;
  int section = 5;
  for (const auto& g : groups) {
    int n = 1;
    for (const auto& [valid, bytes] : g.cases) {
      out.push_back({"6." + std::to_string(section) + "." + std::to_string(n++), g.title, bytes, valid});
    }
    ++section;
  }
  return out;
}

}  // namespace reactor::ws::testing
