// The Azure SDK for JavaScript against an armguard emulator served over https.
//
// Environment: ARM_ENDPOINT (https://127.0.0.1:PORT), ARM_TOKEN (a bearer token naming the
// caller), NODE_EXTRA_CA_CERTS (the emulator's ca.pem). Prints one JSON object: each step's
// outcome, which the pytest driver (tests/clients/test_js_sdk.py) asserts on.
import { ResourceManagementClient } from "@azure/arm-resources";
import { NetworkManagementClient } from "@azure/arm-network";
import { ComputeManagementClient } from "@azure/arm-compute";

const endpoint = process.env.ARM_ENDPOINT;
const token = process.env.ARM_TOKEN;
const sub = "00000000-0000-0000-0000-0000000000a1";
const rg = "js-sdk";
const credential = {
  getToken: async () => ({ token, expiresOnTimestamp: Date.now() + 3600 * 1000 }),
};
// Poll every 100 ms unless the service asks otherwise (the emulator's Retry-After wins).
const fast = { updateIntervalInMs: 100 };
const options = { endpoint, retryOptions: { maxRetries: 0 } };

const resources = new ResourceManagementClient(credential, sub, options);
const network = new NetworkManagementClient(credential, sub, options);
const compute = new ComputeManagementClient(credential, sub, options);

const results = {};

async function step(name, fn) {
  try {
    results[name] = { ok: true, value: await fn() };
  } catch (err) {
    results[name] = {
      ok: false,
      status: err.statusCode ?? null,
      code: err.code ?? null,
      message: String(err.message ?? err).slice(0, 500),
    };
  }
}

const base = `/subscriptions/${sub}/resourceGroups/${rg}/providers`;
const subnetId = `${base}/Microsoft.Network/virtualNetworks/vnet1/subnets/s1`;
const nicId = `${base}/Microsoft.Network/networkInterfaces/nic1`;

await step("group", async () => {
  const group = await resources.resourceGroups.createOrUpdate(rg, { location: "eastus" });
  return { name: group.name, state: group.properties?.provisioningState };
});

await step("vnet_lro", async () => {
  const vnet = await network.virtualNetworks.beginCreateOrUpdateAndWait(
    rg,
    "vnet1",
    {
      location: "eastus",
      addressSpace: { addressPrefixes: ["10.1.0.0/16"] },
      subnets: [{ name: "s1", addressPrefix: "10.1.0.0/24" }],
    },
    fast,
  );
  return { state: vnet.provisioningState, etag: vnet.etag, subnets: vnet.subnets.length };
});

await step("nic_lro", async () => {
  const nic = await network.networkInterfaces.beginCreateOrUpdateAndWait(
    rg,
    "nic1",
    {
      location: "eastus",
      ipConfigurations: [{ name: "ip1", subnet: { id: subnetId } }],
    },
    fast,
  );
  return { state: nic.provisioningState, subnet: nic.ipConfigurations[0].subnet.id };
});

await step("stale_etag_412", async () => {
  const current = await network.virtualNetworks.get(rg, "vnet1");
  await network.virtualNetworks.beginCreateOrUpdateAndWait(
    rg,
    "vnet1",
    { ...current, tags: { owner: "js" } },
    fast,
  );
  // The ETag read before the write above is stale now.
  await network.virtualNetworks.beginCreateOrUpdateAndWait(
    rg,
    "vnet1",
    { ...current, tags: { owner: "stale" } },
    { ...fast, requestOptions: { customHeaders: { "If-Match": current.etag } } },
  );
  return "written";
});

await step("vm_lro", async () => {
  const vm = await compute.virtualMachines.beginCreateOrUpdateAndWait(
    rg,
    "vm1",
    {
      location: "eastus",
      hardwareProfile: { vmSize: "Standard_B1s" },
      networkProfile: { networkInterfaces: [{ id: nicId, primary: true }] },
    },
    fast,
  );
  return { state: vm.provisioningState, size: vm.hardwareProfile?.vmSize };
});

await step("busy_vm_409", async () => {
  // A resize starts an operation; a power action during it is refused at once.
  await compute.virtualMachines.beginDeallocateAndWait(rg, "vm1", fast);
  const resize = await compute.virtualMachines.beginUpdate(rg, "vm1", {
    hardwareProfile: { vmSize: "Standard_B2s" },
  });
  try {
    await compute.virtualMachines.beginStart(rg, "vm1");
    return "started";
  } finally {
    await resize.pollUntilDone();
  }
});

await step("instance_view", async () => {
  const vm = await compute.virtualMachines.get(rg, "vm1", { expand: "instanceView" });
  return vm.instanceView.statuses.map((s) => s.code);
});

await step("paging", async () => {
  for (const name of ["vnet2", "vnet3"]) {
    await network.virtualNetworks.beginCreateOrUpdateAndWait(
      rg,
      name,
      { location: "eastus", addressSpace: { addressPrefixes: ["10.9.0.0/16"] } },
      fast,
    );
  }
  let pages = 0;
  let items = 0;
  for await (const page of resources.resources.listByResourceGroup(rg, { top: 2 }).byPage()) {
    pages += 1;
    items += page.length;
  }
  return { pages, items };
});

await step("delete_lro", async () => {
  await network.virtualNetworks.beginDeleteAndWait(rg, "vnet3", fast);
  try {
    await network.virtualNetworks.get(rg, "vnet3");
    return "still there";
  } catch (err) {
    return err.statusCode;
  }
});

process.stdout.write(JSON.stringify(results) + "\n");
