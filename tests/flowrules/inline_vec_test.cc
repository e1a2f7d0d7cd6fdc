// FlowRule's inline storage: a push beyond the capacity throws (a check that
// no build type compiles out), and the planner's largest rule kinds fit.
#include <gtest/gtest.h>

#include <stdexcept>

#include "nicoffload/flowrules/planner.h"
#include "nicoffload/flowrules/rule.h"
#include "support/test_support.h"

namespace nicoffload {
namespace {

using flowrules::FlowRule;
using flowrules::InlineVec;

TEST(InlineVec, PushBeyondTheCapacityThrowsAndKeepsTheContents) {
  InlineVec<int, 2> v;
  v.push_back(7);
  v.push_back(8);
  EXPECT_THROW(v.push_back(9), std::length_error);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0], 7);
  EXPECT_EQ(v[1], 8);
  try {
    v.push_back(9);
  } catch (const std::length_error& e) {
    EXPECT_NE(std::string(e.what()).find("more than 2"), std::string::npos) << e.what();
  }
}

TEST(InlineVec, FlowRulePatternAndActionsStopAtTheirCapacity) {
  FlowRule r;
  for (std::size_t i = 0; i < FlowRule::kMaxPatternItems; ++i)
    r.pattern.push_back(flowrules::EthItem{});
  EXPECT_THROW(r.pattern.push_back(flowrules::VxlanItem{100}), std::length_error);
  EXPECT_EQ(r.pattern.size(), FlowRule::kMaxPatternItems);
  for (std::size_t i = 0; i < FlowRule::kMaxActions; ++i)
    r.actions.push_back(flowrules::CountAction{});
  EXPECT_THROW(r.actions.push_back(flowrules::DropAction{}), std::length_error);
  EXPECT_EQ(r.actions.size(), FlowRule::kMaxActions);
}

TEST(InlineVec, TheLargestRuleKindsFitAndFillTheCapacities) {
  // VXLAN ingress (5 items) and VXLAN egress (6 actions) are the largest:
  // if a rule kind grows, this says which capacity to raise.
  std::size_t most_items = 0, most_actions = 0;
  for (const auto e : {test::Example::kVxlan, test::Example::kRouted}) {
    auto intent = test::exampleIntent(e);
    const auto state = test::planOrThrow(intent, test::loadProfile("sim"));
    for (const auto& r : state.rules) {
      most_items = std::max(most_items, r.pattern.size());
      most_actions = std::max(most_actions, r.actions.size());
    }
  }
  EXPECT_EQ(most_items, FlowRule::kMaxPatternItems);
  EXPECT_EQ(most_actions, FlowRule::kMaxActions);
}

}  // namespace
}  // namespace nicoffload
