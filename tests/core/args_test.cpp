// The argument-table machinery: parsing, printing, JSON, checks, names.
#include "core/args.h"

#include <torch/arg.h>

#include "../support.h"

namespace moco::args {
namespace {

struct O {
  TORCH_ARG(double, lr) = 0.03;
  TORCH_ARG(int64_t, k) = 65536;
  TORCH_ARG(bool, mlp) = false;
  TORCH_ARG(std::vector<int64_t>, schedule) = {120, 160};
  TORCH_ARG(std::string, arch) = "resnet50";
};

TEST(Args, FieldReadsAndWritesTheMember) {
  O o;
  auto lr = field<O>(MOCO_MEMBER(lr));
  EXPECT_EQ(std::get<double>(lr.get(o)), 0.03);
  lr.set(o, parse("0.5", lr.get(o), "--lr"));
  EXPECT_EQ(o.lr(), 0.5);
  auto sched = field<O>(MOCO_MEMBER(schedule));
  sched.set(o, parse_words({"30", "40,50"}, sched.get(o), "--schedule"));
  EXPECT_EQ(o.schedule(), (std::vector<int64_t>{30, 40, 50}));
}

TEST(Args, ParseErrorsNameTheFlag) {
  auto msg = test::error_message([] { parse("lots", Value(int64_t{1}), "--moco-k"); });
  EXPECT_NE(msg.find("expected --moco-k an integer, got 'lots'"), std::string::npos) << msg;
  msg = test::error_message([] { parse("maybe", Value(true), "--blur"); });
  EXPECT_NE(msg.find("--blur"), std::string::npos) << msg;
  msg = test::error_message([] { parse("1.5x", Value(1.0), "--lr"); });
  EXPECT_NE(msg.find("--lr a number"), std::string::npos) << msg;
  EXPECT_EQ(std::get<bool>(parse("on", Value(false), "--x")), true);
  EXPECT_EQ(std::get<bool>(parse("No", Value(true), "--x")), false);
}

TEST(Args, ToStringIsWhatAUserTypes) {
  EXPECT_EQ(to_string(Value(0.0001)), "0.0001");
  EXPECT_EQ(to_string(Value(1800.0)), "1800");
  EXPECT_EQ(to_string(Value(0.999)), "0.999");
  EXPECT_EQ(to_string(Value(std::vector<int64_t>{120, 160})), "120 160");
  EXPECT_EQ(to_string(Value(true), Style::on_off), "on");
  EXPECT_EQ(to_string(Value(false)), "false");
}

TEST(Args, JsonRoundTripsAndRefusesOtherTypes) {
  for (const Value& v : {Value(0.25), Value(int64_t{7}), Value(true),
                         Value(std::string("x")), Value(std::vector<int64_t>{1, 2})}) {
    EXPECT_EQ(from_json(to_json(v), v, "--f"), v);
  }
  // A double flag saved as an integer reads back as the double.
  EXPECT_EQ(from_json(nlohmann::json(3), Value(1.0), "--lr"), Value(3.0));
  auto msg = test::error_message(
      [] { from_json(nlohmann::json("abc"), Value(int64_t{1}), "--moco-k"); });
  EXPECT_NE(msg.find("--moco-k"), std::string::npos) << msg;
}

TEST(Args, ChecksSayWhatWasExpected) {
  EXPECT_EQ(positive()(Value(1.0)), "");
  EXPECT_EQ(positive()(Value(0.0)), "> 0");
  EXPECT_EQ(positive()(Value(INFINITY)), "> 0");
  EXPECT_EQ(non_negative()(Value(int64_t{-1})), ">= 0");
  EXPECT_EQ(in_range(0, 1, true)(Value(1.0)), "in [0, 1)");
  EXPECT_EQ(in_range(0, 1, true)(Value(0.999)), "");
  EXPECT_EQ(one_of({"off", "bf16"})(Value(std::string("fp8"))), "one of off, bf16");
  EXPECT_EQ(each_non_negative("epochs")(Value(std::vector<int64_t>{1, -2})), "epochs >= 0");
  auto msg = test::error_message([] { check(Value(1.0), {in_range(0, 1, true)}, "--moco-m"); });
  EXPECT_NE(msg.find("expected --moco-m in [0, 1), got 1"), std::string::npos) << msg;
}

TEST(Args, NamesAndSuggestions) {
  EXPECT_EQ(long_name("-b,--batch-size"), "--batch-size");
  EXPECT_EQ(key_of("-b,--batch-size"), "batch_size");
  EXPECT_EQ(key_of("data,--data"), "data");
  EXPECT_EQ(key_of("--no-progress"), "progress");
  EXPECT_EQ(key_of("checkpoint"), "checkpoint");
  EXPECT_EQ(closest("--moco-kk", {"--moco-k", "--moco-m", "--lr"}), "--moco-k");
  EXPECT_EQ(closest("--zzzzzzzz", {"--moco-k", "--lr"}), "");
}

}  // namespace
}  // namespace moco::args
