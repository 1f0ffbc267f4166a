// Live engine ticks: read the feed's path from /config.json, then follow ws_api's WebSocket
// feed as the dashboard relays it (same origin, so the page works wherever the dashboard is
// reachable), reconnecting with a growing delay (ws_api restarts on hot reload).
"use strict";

const rows = document.getElementById("engine-rows");
const statusEl = document.getElementById("ws-status");
const totalEl = document.getElementById("tick-total");
const versionEl = document.getElementById("engine-version");
const ticks = new Map();

function setStatus(state, text) {
  statusEl.dataset.state = state;
  statusEl.textContent = text;
}

function engineRow(name) {
  let cell = document.getElementById("engine-" + name);
  if (cell === null) {
    const row = document.createElement("tr");
    row.id = "row-" + name;
    const label = document.createElement("th");
    label.textContent = name;
    cell = document.createElement("td");
    cell.id = "engine-" + name;
    cell.className = "ticks";
    const energy = document.createElement("td");
    const meter = document.createElement("meter");
    meter.id = "energy-" + name;
    meter.min = 0;
    meter.max = 1;
    energy.appendChild(meter);
    row.append(label, cell, energy);
    rows.appendChild(row);
  }
  return cell;
}

function show(name, count, energy) {
  ticks.set(name, count);
  engineRow(name).textContent = String(count);
  document.getElementById("energy-" + name).value = energy;
  let total = 0;
  for (const value of ticks.values()) total += value;
  totalEl.textContent = String(total);
}

function handle(message) {
  if (message.type === "snapshot") {
    versionEl.textContent = message.engine_version;
    for (const [name, state] of Object.entries(message.engines)) {
      show(name, state.ticks, state.energy);
    }
  } else if (message.type === "tick") {
    show(message.engine, message.ticks, message.energy);
  }
}

function connect(url, attempt) {
  const socket = new WebSocket(url);
  socket.onopen = () => {
    attempt = 0;
    setStatus("open", "live");
  };
  socket.onmessage = (event) => handle(JSON.parse(event.data));
  socket.onclose = () => {
    const delay = Math.min(5000, 250 * 2 ** attempt);
    setStatus("closed", "reconnecting in " + (delay / 1000).toFixed(1) + " s");
    setTimeout(() => connect(url, attempt + 1), delay);
  };
}

function sameOrigin(path) {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  return scheme + location.host + path;
}

fetch("/config.json")
  .then((response) => response.json())
  .then((config) => connect(sameOrigin(config.ws_path), 0))
  .catch((error) => setStatus("closed", "no config: " + error));
