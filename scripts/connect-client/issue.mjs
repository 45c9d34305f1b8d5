// Issues coupons of one campaign with the official Connect client (connect-es), through its
// three transports: Connect JSON over HTTP/1.1, Connect binary over HTTP/2, and gRPC. Trusts
// only the CA file given. Prints {"<transport>": [codes...]} as JSON; exits non-zero on the
// first failed call, with the error.
//
// node issue.mjs <base URL> <CA file> <API key> <campaign id> <coupons per transport>
import { readFileSync } from "node:fs";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { CouponService } from "./gen/coupon_pb.js";

const [baseUrl, caFile, apiKey, campaign, perTransport] = process.argv.slice(2);
if (!perTransport) {
  console.error("usage: node issue.mjs <base URL> <CA file> <API key> <campaign id> <count>");
  process.exit(2);
}
const ca = readFileSync(caFile);
const transports = {
  "connect-json-http1.1": createConnectTransport({
    baseUrl,
    httpVersion: "1.1",
    useBinaryFormat: false,
    nodeOptions: { ca },
  }),
  "connect-binary-http2": createConnectTransport({
    baseUrl,
    httpVersion: "2",
    useBinaryFormat: true,
    nodeOptions: { ca },
  }),
  grpc: createGrpcTransport({ baseUrl, nodeOptions: { ca } }),
};
const issued = {};
try {
  for (const [name, transport] of Object.entries(transports)) {
    const client = createClient(CouponService, transport);
    issued[name] = [];
    for (let i = 0; i < Number(perTransport); i++) {
      const response = await client.issueCoupon(
        { campaignId: BigInt(campaign) },
        { headers: { "x-api-key": apiKey } },
      );
      issued[name].push(response.couponCode);
    }
  }
} catch (e) {
  console.error(`issuing failed: ${e}${e.cause ? ` (cause: ${e.cause})` : ""}`);
  process.exit(1);
}
console.log(JSON.stringify(issued));
