declare module "*.sql" { const text: string; export default text; }
// Assets imported `with { type: "file" }`: the bundler embeds them; the value is their path
// (`/$bunfs/...` inside the compiled executable), readable with Bun.file().
declare module "*.wasm" { const path: string; export default path; }
declare module "*.data" { const path: string; export default path; }
declare module "*.tar.gz" { const path: string; export default path; }
