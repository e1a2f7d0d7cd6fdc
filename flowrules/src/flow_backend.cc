#include "nicoffload/flowrules/flow_backend.h"

namespace nicoffload::flowrules {

std::string attrField(const FlowRule& rule) { return formatRuleId(rule.cls, rule.id) + ".attr"; }

std::string itemField(const FlowRule& rule, std::size_t index) {
  return formatRuleId(rule.cls, rule.id) + ".pattern[" + std::to_string(index) + "]";
}

std::string actionField(const FlowRule& rule, std::size_t index) {
  return formatRuleId(rule.cls, rule.id) + ".actions[" + std::to_string(index) + "]";
}

Error itemError(ErrorCode code, const FlowRule& rule, std::size_t index, std::string message) {
  std::string value = index < rule.pattern.size()
                          ? std::string(model::itemName(itemType(rule.pattern[index])))
                          : std::string();
  return makeError(code, itemField(rule, index), std::move(value), std::move(message));
}

Error actionError(ErrorCode code, const FlowRule& rule, std::size_t index, std::string message) {
  std::string value = index < rule.actions.size()
                          ? std::string(model::actionName(actionType(rule.actions[index])))
                          : std::string();
  return makeError(code, actionField(rule, index), std::move(value), std::move(message));
}

Error attrError(ErrorCode code, const FlowRule& rule, std::string value, std::string message) {
  return makeError(code, attrField(rule), std::move(value), std::move(message));
}

}  // namespace nicoffload::flowrules
