// End to end on the simulated NIC: switchdev, VFs, representors, the VF pool,
// a vDPA device per port, the interface XML, port removal, a restart.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <pugixml.hpp>

#include "nicoffload/model/vf_pool.h"
#include "nicoffload/offload/sim_pf.h"
#include "nicoffload/vdpa/sim_vdpa_backend.h"
#include "support/fake_sysfs.h"
#include "support/test_support.h"

namespace nicoffload::vdpa {
namespace {

using offload::SimPf;
using test::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::unique_ptr<SimPf> openSim(const std::string& dir, const std::string& profile) {
  offload::SimPfOptions o;
  o.dir = dir;
  o.profile = test::loadProfile(profile);
  auto nic = SimPf::open(o);
  if (!nic) throw std::runtime_error(nic.error().describe());
  return std::move(*nic);
}

VdpaDeviceSpec specFor(const model::Port& p, std::uint16_t vf) {
  return {deviceName(p.key), p.key, model::VdpaKind::kSim, vf, p.mac, p.mtu, p.queues};
}

// What the daemon will do for a port: VF from the pool, VF settings, vDPA device.
VdpaDevice bringUp(offload::NicBackend& nic, VdpaBackend& vdpa, VfPool& pool,
                   const model::Port& p) {
  const auto vf = test::unwrap(pool.assign(p.key, p.vf), "assign");
  test::check(nic.setVfMac(vf, p.mac), "vf mac");
  test::check(nic.setVfSpoofCheck(vf, true), "spoofchk");
  test::check(nic.setVfTrust(vf, false), "trust");
  return test::unwrap(vdpa.create(specFor(p, vf)), "vdpa create");
}

TEST(SimEndToEnd, SwitchdevVfsVdpaPerPortAndXml) {
  TempDir dir("nfo-e2e");
  auto sim = openSim(dir.path(), "sim");
  auto host = test::makeHost(model::UnderlayMode::kRouted);
  host.vf_count = 4;
  host.vdpa_backend = model::VdpaKind::kSim;
  std::vector<model::Port> ports;
  for (int i = 0; i < 3; ++i) ports.push_back(test::makePort(i, {}));
  ports[0].vf.reset();  // two ports let the pool choose, one names VF 2
  ports[1].vf.reset();
  ports[2].vf = 2;
  ports[1].mtu = 9000;
  ports[1].queues = 4;

  auto nic = sim->makeBackend();
  auto vdpa = makeSimVdpaBackend(*sim);
  EXPECT_EQ(vdpa->kind(), model::VdpaKind::kSim);
  auto sw = nic->ensureSwitchdev(host.vf_count);
  ASSERT_TRUE(sw.ok()) << sw.error().describe();
  ASSERT_TRUE(sw->changed);

  VfPool pool(host.uplink_pci, host.vf_count);
  auto changes = pool.sync(ports);
  ASSERT_TRUE(changes.ok()) << changes.error().describe();
  EXPECT_THAT(pool.assignments(),
              ElementsAre(::testing::Pair(0, ports[0].key), ::testing::Pair(1, ports[1].key),
                          ::testing::Pair(2, ports[2].key)));

  std::vector<VdpaDevice> devices;
  for (const auto& p : ports) devices.push_back(bringUp(*nic, *vdpa, pool, p));
  std::set<std::string> paths;
  for (std::size_t i = 0; i < ports.size(); ++i) {
    const auto& d = devices[i];
    const auto vf = *pool.vfOf(ports[i].key);
    EXPECT_EQ(d.name, deviceName(ports[i].key));
    EXPECT_EQ(d.vf, vf);
    EXPECT_TRUE(std::filesystem::exists(d.vhost_vdpa_path)) << d.vhost_vdpa_path;
    EXPECT_EQ(std::filesystem::path(d.vhost_vdpa_path).parent_path(), sim->devDir());
    paths.insert(d.vhost_vdpa_path);
    // The representor the software path will use is the one the NIC made.
    auto rep = nic->representorOf(vf);
    ASSERT_TRUE(rep.ok());
    model::Port with_vf = ports[i];
    with_vf.vf = vf;
    EXPECT_EQ(*rep, with_vf.representorName());
    // The libvirt element.
    auto xml = vdpa->interfaceXml(d, ports[i]);
    ASSERT_TRUE(xml.ok()) << xml.error().describe();
    pugi::xml_document doc;
    ASSERT_TRUE(doc.load_string(xml->c_str()));
    auto iface = doc.document_element();
    EXPECT_STREQ(iface.attribute("type").value(), "vdpa");
    EXPECT_EQ(iface.child("source").attribute("dev").value(), d.vhost_vdpa_path);
    EXPECT_EQ(iface.child("mac").attribute("address").value(), ports[i].mac.str());
  }
  EXPECT_EQ(paths.size(), 3u) << "one vhost-vdpa node per port";

  auto st = nic->status();
  ASSERT_TRUE(st.ok());
  for (std::size_t i = 0; i < ports.size(); ++i) {
    const auto& vf = st->vfs[*pool.vfOf(ports[i].key)];
    EXPECT_EQ(vf.mac, ports[i].mac);
    EXPECT_EQ(vf.spoofchk, true);
    EXPECT_EQ(vf.trust, false);
    EXPECT_THAT(vf.vdpa_devices, ElementsAre(deviceName(ports[i].key)));
  }
  auto listed = vdpa->list();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 3u);
  for (const auto& d : *listed) {
    const auto it = std::find_if(devices.begin(), devices.end(),
                                 [&](const VdpaDevice& x) { return x.name == d.name; });
    ASSERT_NE(it, devices.end());
    EXPECT_EQ(d, *it) << "read-back equals what create returned";
  }

  // The eswitch cannot change under running vDPA devices.
  auto busy = nic->ensureSwitchdev(6);
  ASSERT_FALSE(busy.ok());
  EXPECT_EQ(busy.error().code, ErrorCode::kBusy);
  EXPECT_THAT(busy.error().message, HasSubstr("backs vDPA device nfo"));
  // A second device on a VF that has one is refused.
  auto second = specFor(ports[0], *pool.vfOf(ports[1].key));
  second.name = "nfo0000000000ff";
  auto clash = vdpa->create(second);
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.error().code, ErrorCode::kBusy);

  // Port removal: device gone, VF back to the pool with its MAC scrubbed.
  const auto& gone = ports[1];
  const auto gone_vf = *pool.vfOf(gone.key);
  ASSERT_TRUE(vdpa->destroy(deviceName(gone.key)).ok());
  ASSERT_TRUE(vdpa->destroy(deviceName(gone.key)).ok()) << "idempotent";
  EXPECT_FALSE(std::filesystem::exists(devices[1].vhost_vdpa_path));
  ASSERT_EQ(pool.release(gone.key), gone_vf);
  ASSERT_TRUE(nic->releaseVf(gone_vf).ok());
  st = nic->status();
  EXPECT_EQ(st->vfs[gone_vf].mac, MacAddr{});
  EXPECT_TRUE(st->vfs[gone_vf].vdpa_devices.empty());
  EXPECT_EQ(vdpa->list()->size(), 2u);

  // Restart: a new controller on the same NIC finds everything and converges
  // with no change.
  const auto state = pool.toJson();
  sim.reset();
  nic.reset();
  vdpa.reset();
  auto sim2 = openSim(dir.path(), "sim");
  auto nic2 = sim2->makeBackend();
  auto vdpa2 = makeSimVdpaBackend(*sim2);
  auto pool2 = test::unwrap(VfPool::fromJson(state, host.uplink_pci, host.vf_count), "pool state");
  auto again = nic2->ensureSwitchdev(host.vf_count);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->changed);
  for (std::size_t i : {0u, 2u}) {
    auto d = vdpa2->create(specFor(ports[i], *pool2.vfOf(ports[i].key)));
    ASSERT_TRUE(d.ok()) << d.error().describe();
    EXPECT_EQ(d->vhost_vdpa_path, devices[i].vhost_vdpa_path) << "the same device, not a new one";
  }
  EXPECT_EQ(vdpa2->list()->size(), 2u);
}

TEST(SimEndToEnd, ConnectX5HasSwitchdevButNoVdpa) {
  TempDir dir("nfo-e2e");
  auto sim = openSim(dir.path(), "connectx-5");
  auto nic = sim->makeBackend();
  ASSERT_TRUE(nic->ensureSwitchdev(2).ok());
  auto vdpa = makeSimVdpaBackend(*sim);
  auto p = test::makePort(0, {});
  auto r = vdpa->create(specFor(p, 0));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kUnsupported);
  EXPECT_THAT(r.error().message, HasSubstr("profile connectx-5"));
  EXPECT_THAT(r.error().message, HasSubstr("has no vDPA"));
  EXPECT_THAT(r.error().message, HasSubstr("use vdpa 'none' (VF passthrough) or another NIC"));
  EXPECT_TRUE(sim->vdpaDevs().empty());
  // The kernel of such a NIC has no vDPA management device either.
  EXPECT_TRUE(sim->vdpaMgmtDevs().empty());
}

TEST(SimEndToEnd, VfExhaustion) {
  TempDir dir("nfo-e2e");
  auto sim = openSim(dir.path(), "sim");
  ASSERT_TRUE(sim->makeBackend()->ensureSwitchdev(2).ok());
  VfPool pool("0000:03:00.0", 2);
  std::vector<model::Port> ports;
  for (int i = 0; i < 3; ++i) {
    ports.push_back(test::makePort(i, {}));
    ports.back().vf.reset();
  }
  auto r = pool.sync(ports);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kExhausted);
  EXPECT_THAT(r.error().message,
              HasSubstr("no free VF on PF 0000:03:00.0: all 2 VFs are assigned"));
}

TEST(SimEndToEnd, UnbindingTheVfTakesItsVdpaDeviceAway) {
  TempDir dir("nfo-e2e");
  auto sim = openSim(dir.path(), "sim");
  auto nic = sim->makeBackend();
  ASSERT_TRUE(nic->ensureSwitchdev(1).ok());
  auto vdpa = makeSimVdpaBackend(*sim);
  auto p = test::makePort(0, {});
  auto d = vdpa->create(specFor(p, 0));
  ASSERT_TRUE(d.ok()) << d.error().describe();
  ASSERT_TRUE(sim->sysfs()->write("bus/pci/drivers/mlx5_core/unbind", "0000:03:00.2").ok());
  EXPECT_TRUE(vdpa->list()->empty());
  EXPECT_FALSE(std::filesystem::exists(d->vhost_vdpa_path));
  // create() reports the missing management device rather than failing obscurely.
  auto again = vdpa->create(specFor(p, 0));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(again.error().message, HasSubstr("no vDPA management device pci/0000:03:00.2"));
  // ensureSwitchdev binds it back.
  auto fixed = nic->ensureSwitchdev(1);
  ASSERT_TRUE(fixed.ok());
  EXPECT_TRUE(fixed->changed);
  EXPECT_TRUE(vdpa->create(specFor(p, 0)).ok());
}

}  // namespace
}  // namespace nicoffload::vdpa
