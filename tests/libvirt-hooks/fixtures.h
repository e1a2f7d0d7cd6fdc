// Domain XML fixtures shaped like what libvirt 9 writes to the qemu hook's
// stdin (virsh dumpxml of a running domain, trimmed).
#pragma once

#include <string>

namespace nicoffload::hooks::testing {

inline const char* kUuid = "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b";

// Five interface kinds; metadata for the ethernet (index 3) and vdpa (0) ones.
inline std::string domainXml(const std::string& metadata_ports,
                             const std::string& uuid = "6F1E2D3C-4B5A-4978-8A6B-5C4D3E2F1A0B") {
  return R"(<domain type='kvm' id='7'>
  <name>vm-web-1</name>
  <uuid>)" +
         uuid + R"(</uuid>
  <metadata>
    <ovirt-tune:qos xmlns:ovirt-tune='http://ovirt.org/vm/tune/1.0'/>
)" + metadata_ports +
         R"(
  </metadata>
  <memory unit='KiB'>65536</memory>
  <vcpu placement='static'>1</vcpu>
  <os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type><boot dev='hd'/></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <interface type='vdpa'>
      <mac address='52:54:00:AA:00:01'/>
      <source dev='/dev/vhost-vdpa-0'/>
      <model type='virtio'/>
      <alias name='net0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>
    </interface>
    <interface type='vhostuser'>
      <mac address='52:54:00:aa:00:02'/>
      <source type='unix' path='/run/nicoffload/vhost/nfo0.sock' mode='client'>
        <reconnect enabled='yes' timeout='5'/>
      </source>
      <model type='virtio'/>
    </interface>
    <interface type='hostdev' managed='yes'>
      <mac address='52:54:00:aa:00:03'/>
      <source><address type='pci' domain='0x0000' bus='0x03' slot='0x00' function='0x2'/></source>
    </interface>
    <interface type='ethernet'>
      <mac address='52:54:00:aa:00:04'/>
      <target dev='nfotap4' managed='yes'/>
      <model type='virtio'/>
    </interface>
    <interface type='bridge'>
      <mac address='52:54:00:aa:00:05'/>
      <source bridge='br0'/>
      <target dev='vnet5'/>
      <model type='virtio'/>
    </interface>
    <serial type='pty'><target port='0'/></serial>
  </devices>
</domain>
)";
}

inline std::string twoPorts() {
  return R"(    <nfo:ports xmlns:nfo='http://nicoffload.org/xmlns/ports/1'>
      <nfo:port mac='52:54:00:aa:00:04' vni='100'>
        <nfo:address>10.0.0.4/32</nfo:address>
        <nfo:address>10.0.1.4</nfo:address>
      </nfo:port>
      <nfo:port mac='52:54:00:aa:00:01' vf='3' vdpa='sim'>
        <nfo:address>10.0.0.1/32</nfo:address>
      </nfo:port>
    </nfo:ports>)";
}

}  // namespace nicoffload::hooks::testing
