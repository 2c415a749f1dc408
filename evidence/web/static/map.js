"use strict";
// The map of what the page lists (templates/map.html) on the vendored Leaflet: each point opens its recording; the
// tiles are the agency's own server (EVIDENCE_MAP_TILES) or, with none, a plain latitude/longitude grid drawn here
// (nothing fetched). On the search page a circle drawn with two clicks (centre, then edge) fills the search's
// latitude, longitude and radius.
(function () {
  const box = document.getElementById("map");
  const details = document.getElementById("map-box");
  if (!box || !details || !window.L) {
    return;
  }
  let map = null;

  function gridLayer() {
    const Grid = L.GridLayer.extend({
      createTile: function (coords) {
        const tile = document.createElement("canvas");
        const size = this.getTileSize();
        tile.width = size.x;
        tile.height = size.y;
        const pen = tile.getContext("2d");
        pen.fillStyle = "#f4f6f9";
        pen.fillRect(0, 0, size.x, size.y);
        pen.strokeStyle = "#c5ccd8";
        pen.strokeRect(0.5, 0.5, size.x, size.y);
        const corner = map.unproject(coords.scaleBy(size), coords.z).wrap();
        const digits = Math.max(0, Math.min(5, Math.floor(coords.z / 3)));
        pen.fillStyle = "#4d5566";
        pen.font = "11px system-ui, sans-serif";
        pen.fillText(corner.lat.toFixed(digits) + ", " + corner.lng.toFixed(digits), 4, 13);
        return tile;
      },
    });
    return new Grid({ tileSize: 256 });
  }

  function popup(point) {
    const body = document.createElement("div");
    const link = document.createElement("a");
    link.href = point.href;
    link.textContent = "#" + point.id + " " + point.name;
    const when = document.createElement("div");
    when.textContent = point.when;
    body.append(link, when);
    return body;
  }

  function start() {
    map = L.map(box, { worldCopyJump: true, zoomControl: false });
    L.control.zoom({ zoomInTitle: box.dataset.zoomIn, zoomOutTitle: box.dataset.zoomOut }).addTo(map);
    box.leafletMap = map; // for the browser tests
    map.attributionControl.setPrefix(false);
    if (box.dataset.tiles) {
      // the credit is text (Leaflet would take it as HTML: a link or markup slipped into the setting)
      const credit = document.createElement("span");
      credit.textContent = box.dataset.attribution || "";
      L.tileLayer(box.dataset.tiles, { maxZoom: 19, attribution: credit.innerHTML }).addTo(map);
    } else {
      gridLayer().addTo(map);
    }
    const points = JSON.parse(box.dataset.points || "[]");
    const near = JSON.parse(box.dataset.near || "null");
    const bounds = [];
    points.forEach(function (point) {
      L.circleMarker([point.lat, point.lon], {
        radius: 7, color: "#1f3a5f", weight: 2, fillColor: "#3b6ea5", fillOpacity: 0.8,
        className: "evidence-point", bubblingMouseEvents: false,
      }).bindPopup(popup(point)).addTo(map);
      bounds.push([point.lat, point.lon]);
    });
    if (near) {
      L.circle([near.lat, near.lon], { radius: near.metres, className: "near-searched", interactive: false })
        .addTo(map);
      const around = L.latLng(near.lat, near.lon).toBounds(near.metres * 2);
      bounds.push(around.getNorthWest(), around.getSouthEast());
    }
    if (bounds.length) {
      map.fitBounds(bounds, { padding: [24, 24], maxZoom: 16 });
    } else {
      map.setView([35, 105], 4);
    }
    drawing(map);
  }

  function drawing(map) {
    const button = document.getElementById("draw-near");
    const form = document.querySelector("form.filters");
    const status = document.getElementById("draw-status");
    if (!button || !form || !status) {
      return;
    }
    const most = Number(box.dataset.maxRadius) || 100000;
    let on = false;
    let centre = null;
    let circle = null;
    function set(pressed) {
      on = pressed;
      centre = null;
      button.setAttribute("aria-pressed", String(on));
      box.classList.toggle("drawing", on);
      status.textContent = on ? button.dataset.centre : "";
    }
    button.addEventListener("click", function () {
      set(!on);
    });
    map.on("click", function (event) {
      if (!on) {
        return;
      }
      if (!centre) {
        centre = event.latlng.wrap();
        if (circle) {
          circle.remove();
        }
        circle = L.circle(centre, { radius: 1, className: "near-drawn", interactive: false }).addTo(map);
        status.textContent = button.dataset.radius;
        return;
      }
      const wanted = Math.max(1, Math.round(map.distance(centre, event.latlng)));
      const metres = Math.min(most, wanted);
      circle.setRadius(metres);
      form.elements.lat.value = centre.lat.toFixed(6);
      form.elements.lon.value = centre.lng.toFixed(6);
      form.elements.radius.value = String(metres);
      const said = button.dataset.done.replace("{lat}", centre.lat.toFixed(5))
        .replace("{lon}", centre.lng.toFixed(5)).replace("{metres}", String(metres));
      set(false);
      status.textContent = wanted > most ? said + " — " + button.dataset.tooFar.replace("{max}", String(most)) : said;
    });
    map.on("mousemove", function (event) {
      if (on && centre && circle) {
        circle.setRadius(Math.min(most, map.distance(centre, event.latlng)));
      }
    });
  }

  function open() {
    if (details.open && !map) {
      start();
    } else if (map) {
      map.invalidateSize();
    }
  }
  details.addEventListener("toggle", open);
  open();
})();
