import { defineConfig } from "vite";

// The console is served by the hub itself (gridhub serve, GET /): relative asset paths, one
// bundle per vendor so the map and the charts cache apart from the console's own code.
export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    assetsDir: "assets",
    sourcemap: false,
    chunkSizeWarningLimit: 1500,
    rolldownOptions: {
      output: {
        codeSplitting: {
          groups: [
            { name: "maplibre", test: /node_modules[\\/]maplibre-gl/ },
            { name: "echarts", test: /node_modules[\\/](echarts|zrender)/ },
          ],
        },
      },
    },
  },
  server: {
    proxy: {
      "/gridhub.v1": "http://127.0.0.1:50051",
      "/config.json": "http://127.0.0.1:50051",
    },
  },
});
