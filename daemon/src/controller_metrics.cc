// The controller's metrics (controller_metrics.h), read from its parts.
#include "nicoffload/daemon/controller_metrics.h"

#include "nicoffload/daemon/metrics.h"
#include "nicoffload/flowrules/render.h"

namespace nicoffload::daemon {

std::string controllerMetricsText(const ControllerMetricsSources& s) {
  MetricsRegistry m;
  const auto& c = s.applier.counters();
  m.describe("nicoffload_ports", "gauge", "Ports (VM NICs) in the intent.");
  m.set("nicoffload_ports", "", static_cast<double>(s.admission.intent().ports.size()));
  m.describe("nicoffload_remotes", "gauge", "Remote endpoints in the intent.");
  m.set("nicoffload_remotes", "", static_cast<double>(s.admission.intent().remotes.size()));
  m.describe("nicoffload_rules", "gauge", "Flow rules in effect by placement.");
  m.set("nicoffload_rules", "placement=\"hw\"", static_cast<double>(c.hw));
  m.set("nicoffload_rules", "placement=\"sw\"", static_cast<double>(c.sw));
  m.describe("nicoffload_rules_sw", "gauge", "Flow rules in the software path by reason.");
  for (std::size_t i = 1; i < c.sw_by_reason.size(); ++i)
    m.set("nicoffload_rules_sw", std::string("reason=\"") + flowrules::reasonCodeName(i) + "\"",
          static_cast<double>(c.sw_by_reason[i]));
  const std::string be = "backend=\"" + s.flow_backend + "\"";
  m.describe("nicoffload_flow_operations_total", "counter", "Flow backend operations.");
  m.set("nicoffload_flow_operations_total", be + ",op=\"validate\"",
        static_cast<double>(c.validations));
  m.set("nicoffload_flow_operations_total", be + ",op=\"create\"",
        static_cast<double>(c.creations));
  m.set("nicoffload_flow_operations_total", be + ",op=\"destroy\"",
        static_cast<double>(c.destructions));
  m.describe("nicoffload_flow_failures_total", "counter", "Flow backend refusals and failures.");
  m.set("nicoffload_flow_failures_total", be + ",kind=\"refused\"",
        static_cast<double>(c.refusals));
  m.set("nicoffload_flow_failures_total", be + ",kind=\"destroy\"",
        static_cast<double>(c.destroy_failures));
  m.describe("nicoffload_software_path_operations_total", "counter",
             "Kernel objects programmed or removed.");
  m.set("nicoffload_software_path_operations_total", "", static_cast<double>(s.counters.sw_ops));
  m.describe("nicoffload_software_path_failures_total", "counter",
             "Kernel objects the kernel refused.");
  m.set("nicoffload_software_path_failures_total", "", static_cast<double>(s.counters.sw_failures));
  m.describe("nicoffload_software_path_objects_failed", "gauge",
             "Kernel objects failing now (retried).");
  m.set("nicoffload_software_path_objects_failed", "",
        static_cast<double>(s.failures.count(FailureBook::Kind::kKernel)));
  m.describe("nicoffload_failing_objects", "gauge",
             "Objects whose last attempt failed, by kind (each retried with its own backoff).");
  for (const auto kind : {FailureBook::Kind::kKernel, FailureBook::Kind::kDevice,
                          FailureBook::Kind::kPool, FailureBook::Kind::kPass})
    m.set("nicoffload_failing_objects", "kind=\"" + std::string(toString(kind)) + "\"",
          static_cast<double>(s.failures.count(kind)));
  m.describe("nicoffload_device_operations_total", "counter",
             "NIC (VF settings) and vDPA operations.");
  m.set("nicoffload_device_operations_total", "backend=\"nic\"",
        static_cast<double>(s.counters.nic_ops));
  m.set("nicoffload_device_operations_total", "backend=\"vdpa\"",
        static_cast<double>(s.vdpa.counters().ops));
  m.describe("nicoffload_device_failures_total", "counter", "NIC and vDPA operations that failed.");
  m.set("nicoffload_device_failures_total", "backend=\"nic\"",
        static_cast<double>(s.counters.nic_failures));
  m.set("nicoffload_device_failures_total", "backend=\"vdpa\"",
        static_cast<double>(s.vdpa.counters().failures));
  m.describe("nicoffload_vdpa_devices", "gauge", "vDPA devices held (ports' and the pool's).");
  m.set("nicoffload_vdpa_devices", "", static_cast<double>(s.vdpa.size()));
  m.describe("nicoffload_vdpa_pool_ready", "gauge",
             "vDPA devices of the warm pool ready for a port (vdpa.pool).");
  m.set("nicoffload_vdpa_pool_ready", "", static_cast<double>(s.vdpa.ready()));
  m.describe("nicoffload_vdpa_pool_size", "gauge", "The warm pool's configured size (0: off).");
  m.set("nicoffload_vdpa_pool_size", "", s.vdpa.poolEnabled() ? s.host.vdpa_pool_size : 0.0);
  m.describe(
      "nicoffload_vdpa_port_devices_total", "counter",
      "Ports given a vDPA device: from the pool, or created on demand while the pool was on.");
  m.set("nicoffload_vdpa_port_devices_total", "source=\"pool\"",
        static_cast<double>(s.vdpa.counters().pool_claims));
  m.set("nicoffload_vdpa_port_devices_total", "source=\"on_demand\"",
        static_cast<double>(s.vdpa.counters().pool_misses));
  m.describe("nicoffload_vdpa_pool_refills_total", "counter", "Pool devices made ahead.");
  m.set("nicoffload_vdpa_pool_refills_total", "",
        static_cast<double>(s.vdpa.counters().pool_refills));
  m.describe("nicoffload_ports_tentative", "gauge",
             "Ports held as tentative claims (the hook's migrate), not confirmed yet.");
  m.set("nicoffload_ports_tentative", "", static_cast<double>(s.claims.tentativeCount()));
  m.describe("nicoffload_tentative_ports_expired_total", "counter",
             "Tentative ports removed because nothing confirmed them in daemon.tentative_ttl_ms.");
  m.set("nicoffload_tentative_ports_expired_total", "", static_cast<double>(s.claims.expired()));
  m.describe("nicoffload_reconcile_passes_total", "counter", "Reconcile passes by kind.");
  m.set("nicoffload_reconcile_passes_total", "kind=\"any\"",
        static_cast<double>(s.counters.reconcile_passes));
  m.set("nicoffload_reconcile_passes_total", "kind=\"full\"",
        static_cast<double>(s.counters.full_passes));
  m.set("nicoffload_reconcile_passes_total", "kind=\"full_quiet\"",
        static_cast<double>(s.counters.quiet_passes));
  m.describe("nicoffload_retries_total", "counter", "Reconcile retries after failures.");
  m.set("nicoffload_retries_total", "", static_cast<double>(s.counters.retries));
  m.describe("nicoffload_state_saves_total", "counter",
             "Batches appended to the state journal (one fdatasync each), by result.");
  m.set("nicoffload_state_saves_total", "result=\"ok\"",
        static_cast<double>(s.counters.state_saves));
  m.set("nicoffload_state_saves_total", "result=\"failed\"",
        static_cast<double>(s.counters.state_save_failures));
  const auto journal = s.store.stats();
  m.describe("nicoffload_state_journal_bytes", "gauge",
             "Bytes of journal since the last snapshot of the state.");
  m.set("nicoffload_state_journal_bytes", "", static_cast<double>(journal.journal_bytes));
  m.describe("nicoffload_state_compactions_total", "counter",
             "Snapshots of the state written in the background, by result.");
  m.set("nicoffload_state_compactions_total", "result=\"ok\"",
        static_cast<double>(journal.compactions));
  m.set("nicoffload_state_compactions_total", "result=\"failed\"",
        static_cast<double>(journal.compaction_failures));
  m.describe("nicoffload_internal_errors_total", "counter",
             "Requests answered with an internal error (an exception caught at the request "
             "boundary: a bug).");
  m.set("nicoffload_internal_errors_total", "", static_cast<double>(s.counters.internal_errors));
  if (const auto* server = s.server) {
    m.describe("nicoffload_control_requests_total", "counter",
               "Control socket requests by outcome.");
    m.set("nicoffload_control_requests_total", "outcome=\"served\"",
          static_cast<double>(server->requests));
    m.set("nicoffload_control_requests_total", "outcome=\"malformed\"",
          static_cast<double>(server->malformed));
    m.set("nicoffload_control_requests_total", "outcome=\"oversized\"",
          static_cast<double>(server->oversized));
    m.set("nicoffload_control_requests_total", "outcome=\"peer_refused\"",
          static_cast<double>(server->refused_peers));
    m.set("nicoffload_control_requests_total", "outcome=\"refused\"",
          static_cast<double>(s.counters.requests_refused));
    m.set("nicoffload_control_requests_total", "outcome=\"timed_out\"",
          static_cast<double>(server->timed_out));
  }
  if (s.learned) s.learned->metrics(m, s.admission, s.watcher);
  return m.render() + s.traffic.metricsText();
}

}  // namespace nicoffload::daemon
