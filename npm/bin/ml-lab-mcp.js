#!/usr/bin/env node
// ml-lab-mcp launcher for npx: finds uvx and runs the Python server of the same version through it.
// Dependency-free on purpose. stdout belongs to the MCP protocol: every diagnostic goes to stderr.
"use strict";

const { spawn, spawnSync } = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");

const VERSION = require("../package.json").version;
const GUARD = "ML_LAB_MCP_NPM_LAUNCHER"; // set for the child; seeing it means we would launch ourselves again
const IS_WIN = process.platform === "win32";
const KILL_GRACE_MS = 5000;
const PARENT_POLL_MS = 1000;

function say(message) {
  process.stderr.write(`ml-lab-mcp (npm launcher): ${message}\n`);
}

function isFile(p) {
  try {
    return fs.statSync(p).isFile();
  } catch (_) {
    return false;
  }
}

// Split ML_LAB_UVX_ARGS like a shell would for simple cases: whitespace, '...' and "..." quoting.
function splitArgs(text) {
  const out = [];
  const re = /"((?:\\.|[^"\\])*)"|'([^']*)'|(\S+)/g;
  let m;
  while ((m = re.exec(text)) !== null) {
    out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : m[2] !== undefined ? m[2] : m[3]);
  }
  return out;
}

function executableNames(base) {
  if (!IS_WIN) return [base];
  const exts = (process.env.PATHEXT || ".EXE;.CMD;.BAT")
    .split(";")
    .filter(Boolean)
    .map((e) => e.toLowerCase());
  return [base + ".exe", ...exts.filter((e) => e !== ".exe").map((e) => base + e)];
}

// The folders uv's installers and package managers use, for clients started with a minimal PATH
// (Claude Desktop on macOS does not read the shell profile that puts ~/.local/bin on PATH).
function usualDirs() {
  const home = os.homedir();
  const env = process.env;
  const dirs = [env.UV_INSTALL_DIR, env.XDG_BIN_HOME, path.join(home, ".local", "bin"), path.join(home, ".cargo", "bin")];
  if (IS_WIN) {
    const profile = env.USERPROFILE || home;
    const local = env.LOCALAPPDATA || path.join(profile, "AppData", "Local");
    dirs.push(
      path.join(profile, ".local", "bin"),
      path.join(profile, ".cargo", "bin"),
      path.join(local, "Programs", "uv"),
      path.join(local, "Microsoft", "WinGet", "Links"),
      env.APPDATA && path.join(env.APPDATA, "Python", "Scripts"),
    );
  } else {
    dirs.push("/opt/homebrew/bin", "/usr/local/bin", "/home/linuxbrew/.linuxbrew/bin", "/usr/bin", "/snap/bin");
  }
  return dirs.filter(Boolean);
}

function findUvx() {
  const override = process.env.ML_LAB_UVX;
  if (override !== undefined && override !== "") {
    if (["0", "none", "off", "false"].includes(override.toLowerCase())) return null;
    if (isFile(override)) return override;
    say(`ML_LAB_UVX=${override} is not a file; looking for uvx elsewhere`);
  }
  const pathDirs = (process.env.PATH || process.env.Path || "").split(path.delimiter).filter(Boolean);
  for (const dir of [...pathDirs, ...usualDirs()]) {
    for (const name of executableNames("uvx")) {
      const candidate = path.join(dir, name);
      if (isFile(candidate)) return candidate;
    }
  }
  return null;
}

// The fallback: a Python where the ml-lab-mcp distribution is installed (pip install ml-lab-mcp).
function findPython() {
  const candidates = process.env.ML_LAB_PYTHON ? [process.env.ML_LAB_PYTHON] : IS_WIN ? ["python", "py"] : ["python3", "python"];
  const probe = "import importlib.metadata as m; m.version('ml-lab-mcp')";
  for (const py of candidates) {
    const r = spawnSync(py, ["-c", probe], { stdio: ["ignore", "ignore", "ignore"], timeout: 30000, windowsHide: true });
    if (!r.error && r.status === 0) return py;
  }
  return null;
}

function plan() {
  const userArgs = process.argv.slice(2);
  const uvx = findUvx();
  if (uvx) {
    const from = process.env.ML_LAB_UVX_FROM || `ml-lab-mcp==${VERSION}`;
    const extra = splitArgs(process.env.ML_LAB_UVX_ARGS || "");
    return { command: uvx, args: [...extra, "--from", from, "ml-lab-mcp", ...userArgs], how: "uvx" };
  }
  const python = findPython();
  if (python) return { command: python, args: ["-m", "mcp_server", ...userArgs], how: "python" };
  return null;
}

function main() {
  if (process.env[GUARD]) {
    say(`refusing to start: ${GUARD} is set, so this launcher would be starting itself again. ` +
      "Point ML_LAB_UVX at the real uvx, or unset that variable.");
    process.exit(1);
  }
  const how = plan();
  if (!how) {
    say("could not find uvx, nor a Python with ml-lab-mcp installed.\n" +
      "  Install uv (https://docs.astral.sh/uv/getting-started/installation/), then restart your MCP client;\n" +
      "  or set ML_LAB_UVX to the full path of uvx" + (IS_WIN ? " (uvx.exe)" : "") + ";\n" +
      "  or `pip install ml-lab-mcp` and set ML_LAB_PYTHON to that python.");
    process.exit(127);
  }
  if (process.env.ML_LAB_LAUNCHER_DEBUG) say(`running ${how.command} ${how.args.join(" ")}`);

  // Node refuses to spawn .cmd/.bat files without a shell; through cmd.exe, quote what has spaces.
  const viaShell = IS_WIN && /\.(cmd|bat)$/i.test(how.command);
  const quote = (a) => (viaShell && /[\s"&|<>^]/.test(a) ? `"${a.replace(/"/g, '""')}"` : a);
  const child = spawn(quote(how.command), how.args.map(quote), {
    stdio: "inherit",
    env: { ...process.env, [GUARD]: "1" },
    windowsHide: true,
    shell: viaShell,
  });

  let stopping = false;
  function stop(signal) {
    if (child.exitCode !== null || child.signalCode !== null) return;
    try {
      child.kill(signal);
    } catch (_) {
      // already gone
    }
    if (!stopping) {
      stopping = true;
      setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      }, KILL_GRACE_MS).unref();
    }
  }

  const forwarded = IS_WIN ? ["SIGINT", "SIGTERM", "SIGBREAK"] : ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"];
  for (const signal of forwarded) process.on(signal, () => stop(signal));

  // Orphaned (the client died without closing our stdin, or killed only us): end the server too.
  const parentPid = process.ppid;
  const watch = setInterval(() => {
    let gone = process.ppid !== parentPid;
    if (!gone) {
      try {
        process.kill(parentPid, 0);
      } catch (err) {
        gone = err.code === "ESRCH";
      }
    }
    if (gone) {
      say("the MCP client went away; stopping the server");
      clearInterval(watch);
      stop("SIGTERM");
    }
  }, PARENT_POLL_MS);

  child.on("error", (err) => {
    clearInterval(watch);
    say(`could not start ${how.command}: ${err.message}`);
    process.exit(127);
  });
  child.on("exit", (code, signal) => {
    clearInterval(watch);
    if (signal) {
      // Die the same way, so our parent sees the real cause.
      for (const s of forwarded) process.removeAllListeners(s);
      try {
        process.kill(process.pid, signal);
      } catch (_) {
        // the platform cannot raise it; fall through to an exit code
      }
      const number = os.constants.signals[signal] || 1;
      setTimeout(() => process.exit(128 + number), 200);
      return;
    }
    process.exit(code === null ? 1 : code);
  });
}

main();
