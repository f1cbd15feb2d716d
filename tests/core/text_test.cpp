// Text helpers: quoting that sh reads back as the same words, and file
// content made safe for a log line.
#include "core/text.h"

#include "../support.h"

namespace moco {
namespace {

TEST(Text, ShellQuotingReadsBackAsTheSameWordsInSh) {
  EXPECT_EQ(shell_quote("--moco-k"), "--moco-k");
  EXPECT_EQ(shell_quote("a b"), "'a b'");
  EXPECT_EQ(shell_quote(""), "''");
  const std::vector<std::string> words = {"plain", "it's", "$HOME", "a b", "{x,y}", "`id`", "\\n"};
  const auto dir = test::scratch_dir("sh");
  // sh prints each word it was given on a line of its own.
  const auto r = test::run_capture("sh -c 'for w in \"$@\"; do printf \"%s\\n\" \"$w\"; done' sh " +
                                       shell_line(words),
                                   dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  std::string expected;
  for (const auto& w : words) expected += w + "\n";
  EXPECT_EQ(r.out, expected);
}

TEST(Text, PrintableKeepsNothingATerminalWouldAct) {
  EXPECT_EQ(printable("pid 7 on host"), "pid 7 on host");
  EXPECT_EQ(printable("a\x1b[2Jb\n\x07\xff"), "a?[2Jb???");
  EXPECT_EQ(printable(std::string(100, 'x'), 10), "xxxxxxxxxx...");
}

}  // namespace
}  // namespace moco
