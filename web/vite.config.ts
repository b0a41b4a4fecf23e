import { defineConfig } from "vite";

// The output is committed (the gateway serves it; `python3 dev.py up` needs no Node), so
// builds must be reproducible and carry no inline script the Content-Security-Policy forbids.
export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
  // `npm run dev`: the API paths go to the gateway `python3 dev.py up` starts.
  server: {
    proxy: {
      "^/(users|posts|timelines|notifications|auth)(/|$|\\?)": "http://127.0.0.1:8080",
    },
  },
});
