/** The same run lifecycle suite on real PostgreSQL (fresh database) + NATS JetStream + Redis. */
import { describeReal } from "../../../test/support/backends";
import { startTestProcess } from "../../../test/support/harness";
import { defineRunSuite } from "../../../test/support/run-suite";

await describeReal("runs", () => {
  defineRunSuite("runs [postgres+nats]", (config) => startTestProcess({ real: true, config }));
});
