"""The live dashboard of `lab up`: a collector that samples the running topology once a
second (collector.py) and the page that streams it over Server-Sent Events (server.py,
static/).

static/uPlot.iife.min.js and static/uPlot.min.css are uPlot 1.6.32 from npm, unchanged,
with its MIT license in static/uPlot.LICENSE. To update: `npm pack uplot@VERSION` in a
temp dir, then copy package/dist/uPlot.iife.min.js, package/dist/uPlot.min.css and
package/LICENSE here.
"""
