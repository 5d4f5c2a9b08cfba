// The Azure SDK for JavaScript through `armguard proxy --tls --emulator`, unmodified: the
// seed's collisions, as JS apps would cause them, must reach no client.
//
// Environment: ARM_ENDPOINT (the proxy), ARM_TOKEN and ARM_TOKEN_2 (two callers),
// NODE_EXTRA_CA_CERTS (the proxy's ca.pem). Prints one JSON object of step outcomes.
import { ResourceManagementClient } from "@azure/arm-resources";
import { NetworkManagementClient } from "@azure/arm-network";
import { ComputeManagementClient } from "@azure/arm-compute";

const endpoint = process.env.ARM_ENDPOINT;
const sub = "00000000-0000-0000-0000-0000000000b2";
const rg = "js-proxy";
const credentialFor = (token) => ({
  getToken: async () => ({ token, expiresOnTimestamp: Date.now() + 3600 * 1000 }),
});
const fast = { updateIntervalInMs: 100 };
// No client-side retries: whatever the proxy does not absorb, the step sees.
const options = { endpoint, retryOptions: { maxRetries: 0 } };
const pipelineCred = credentialFor(process.env.ARM_TOKEN);
const normalizerCred = credentialFor(process.env.ARM_TOKEN_2);

const resources = new ResourceManagementClient(pipelineCred, sub, options);
const network = new NetworkManagementClient(pipelineCred, sub, options);
const normalizer = new NetworkManagementClient(normalizerCred, sub, options);
const compute = new ComputeManagementClient(pipelineCred, sub, options);

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

await step("setup", async () => {
  await resources.resourceGroups.createOrUpdate(rg, { location: "eastus" });
  await network.virtualNetworks.beginCreateOrUpdateAndWait(
    rg,
    "vnet1",
    { location: "eastus", addressSpace: { addressPrefixes: ["10.2.0.0/16"] } },
    fast,
  );
  return "ok";
});

await step("subnets_at_once", async () => {
  const outcomes = await Promise.allSettled(
    Array.from({ length: 10 }, (_, i) =>
      network.subnets.beginCreateOrUpdateAndWait(
        rg,
        "vnet1",
        `s${i}`,
        { addressPrefix: `10.2.${i}.0/24` },
        fast,
      ),
    ),
  );
  const refused = outcomes
    .filter((o) => o.status === "rejected")
    .map((o) => `${o.reason.statusCode} ${o.reason.code}`);
  let listed = 0;
  for await (const _ of network.subnets.list(rg, "vnet1")) listed += 1;
  return { refused, listed };
});

await step("resize_during_power_action", async () => {
  await network.networkInterfaces.beginCreateOrUpdateAndWait(
    rg,
    "nic1",
    {
      location: "eastus",
      ipConfigurations: [{ name: "ip1", subnet: { id: `${base}/Microsoft.Network/virtualNetworks/vnet1/subnets/s0` } }],
    },
    fast,
  );
  await compute.virtualMachines.beginCreateOrUpdateAndWait(
    rg,
    "vm1",
    {
      location: "eastus",
      hardwareProfile: { vmSize: "Standard_B1s" },
      networkProfile: {
        networkInterfaces: [{ id: `${base}/Microsoft.Network/networkInterfaces/nic1`, primary: true }],
      },
    },
    fast,
  );
  await compute.virtualMachines.beginDeallocateAndWait(rg, "vm1", fast);
  // Direct, the start is refused while the resize runs (409 OperationNotAllowed); through the
  // proxy it waits for its turn behind the resize.
  const [resize, start] = await Promise.allSettled([
    compute.virtualMachines.beginUpdateAndWait(rg, "vm1", { hardwareProfile: { vmSize: "Standard_B2s" } }, fast),
    compute.virtualMachines.beginStartAndWait(rg, "vm1", fast),
  ]);
  const vm = await compute.virtualMachines.get(rg, "vm1", { expand: "instanceView" });
  return {
    resize: resize.status,
    start: start.status === "fulfilled" ? "fulfilled" : `${start.reason.statusCode} ${start.reason.code}`,
    size: vm.hardwareProfile.vmSize,
    power: vm.instanceView.statuses.map((s) => s.code).filter((c) => c.startsWith("PowerState")),
  };
});

await step("blind_put_after_a_normalizer", async () => {
  const stale = await network.virtualNetworks.get(rg, "vnet1");
  const fresh = await normalizer.virtualNetworks.get(rg, "vnet1");
  await normalizer.virtualNetworks.beginCreateOrUpdateAndWait(
    rg,
    "vnet1",
    { ...fresh, tags: { ...(fresh.tags ?? {}), owner: "platform" } },
    fast,
  );
  // The pipeline PUTs the whole body it read, without If-Match.
  await network.virtualNetworks.beginCreateOrUpdateAndWait(
    rg,
    "vnet1",
    { ...stale, tags: { ...(stale.tags ?? {}), env: "prod" } },
    fast,
  );
  const now = await network.virtualNetworks.get(rg, "vnet1");
  return { tags: now.tags, subnets: now.subnets.length };
});

process.stdout.write(JSON.stringify(results) + "\n");
