/** The run lifecycle on the embedded default (PGlite + in-process bus), one process. */
import { startTestProcess } from "../../../test/support/harness";
import { defineRunSuite } from "../../../test/support/run-suite";

defineRunSuite("runs [embedded]", (config) => startTestProcess({ config }));
