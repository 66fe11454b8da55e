// Tabs that are links with the URL's hash (#runs, #webhook…): a deep link, a reload and Back
// open the same tab. ARIA tabs pattern: role=tablist/tab/tabpanel, aria-selected, one tab in
// the Tab order, arrow keys (and Home/End) move between tabs and open them.
//
// tabStrip(list) wires the tabs of a [role=tablist]; each tab's aria-controls names its panel.
// A hash names a tab's own panel or any element inside one (#run opens the Runs tab). It
// returns select(id, focus), which opens the tab of id and reports whether one matched, and
// calls onShow(tabId) after a tab is opened.
function tabStrip(list, onShow) {
  const tabs = $$('[role=tab]', list);
  const panelOf = (tab) => document.getElementById(tab.getAttribute('aria-controls'));
  const tabFor = (id) => {
    const el = id && document.getElementById(id);
    if (!el) return null;
    return tabs.find((t) => { const p = panelOf(t); return p === el || p.contains(el) || t === el; }) || null;
  };
  let current = null;
  function open(tab, focus) {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute('aria-selected', on ? 'true' : 'false');
      t.tabIndex = on ? 0 : -1;
      panelOf(t).hidden = !on;
    }
    if (focus) tab.focus();
    // A narrow screen scrolls the strip sideways: the open tab is kept in it.
    const lr = list.getBoundingClientRect(), tr = tab.getBoundingClientRect();
    if (tr.left < lr.left || tr.right > lr.right) list.scrollLeft += tr.left - lr.left - 8;
    if (current !== tab) {
      current = tab;
      if (onShow) onShow(tab.id);
    }
  }
  // A click opens the tab and records its hash as a new history entry without the jump to
  // the anchor a plain link would make.
  for (const tab of tabs) {
    tab.addEventListener('click', (e) => {
      if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      e.preventDefault();
      if (location.hash !== tab.hash) history.pushState(null, '', tab.hash);
      open(tab, false);
    });
  }
  list.addEventListener('keydown', (e) => {
    const i = tabs.indexOf(document.activeElement);
    if (i < 0) return;
    const next = { ArrowRight: i + 1, ArrowDown: i + 1, ArrowLeft: i - 1, ArrowUp: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
    if (next === undefined) return;
    e.preventDefault();
    const tab = tabs[(next + tabs.length) % tabs.length];
    history.replaceState(null, '', tab.hash);
    open(tab, true);
  });
  function fromHash() {
    const tab = tabFor(decodeURIComponent(location.hash.slice(1)));
    open(tab || tabs[0], false);
    return tab;
  }
  window.addEventListener('popstate', fromHash);
  window.addEventListener('hashchange', fromHash);
  // A deep link opens its tab at the top of the page, tabs in view, not scrolled to the anchor.
  if (fromHash()) window.scrollTo(0, 0);
  return (id, focus) => {
    const tab = tabFor(id);
    if (tab) { history.pushState(null, '', tab.hash); open(tab, focus); }
    return !!tab;
  };
}

// flash keeps a message for the next page this tab opens (toastPending shows it there): for a
// change whose page is gone, such as a deleted pipeline.
function flash(msg) {
  try { sessionStorage.setItem('flowd-toast', msg); } catch (e) { /* storage off: no message */ }
}
function toastPending() {
  let msg = null;
  try { msg = sessionStorage.getItem('flowd-toast'); sessionStorage.removeItem('flowd-toast'); } catch (e) { /* storage off */ }
  if (msg) toast(msg);
}
