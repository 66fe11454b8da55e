// Start the page's script: body[data-page] names it.
const page = document.body.dataset.page;
toastPending();
if (pages[page]) pages[page]().catch(e => { console.error(e); toast('Something went wrong on this page: ' + e.message, true); });
