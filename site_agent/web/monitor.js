var ae,k,Be,qt,F,Ue,We,qe,ge,Z,q,Ve,ye,ve,be,Vt,ne={},re=[],Jt=/acit|ex(?:s|g|n|p|$)|rph|grid|ows|mnc|ntw|ine[ch]|zoo|^ord|itera/i,se=Array.isArray;function j(t,e){for(var n in e)t[n]=e[n];return t}function we(t){t&&t.parentNode&&t.parentNode.removeChild(t)}function xe(t,e,n){var r,a,o,s={};for(o in e)o=="key"?r=e[o]:o=="ref"?a=e[o]:s[o]=e[o];if(arguments.length>2&&(s.children=arguments.length>3?ae.call(arguments,2):n),typeof t=="function"&&t.defaultProps!=null)for(o in t.defaultProps)s[o]===void 0&&(s[o]=t.defaultProps[o]);return ee(t,s,r,a,null)}function ee(t,e,n,r,a){var o={type:t,props:e,key:n,ref:r,__k:null,__:null,__b:0,__e:null,__c:null,constructor:void 0,__v:a??++Be,__i:-1,__u:0};return a==null&&k.vnode!=null&&k.vnode(o),o}function ie(t){return t.children}function te(t,e){this.props=t,this.context=e}function I(t,e){if(e==null)return t.__?I(t.__,t.__i+1):null;for(var n;e<t.__k.length;e++)if((n=t.__k[e])!=null&&n.__e!=null)return n.__e;return typeof t.type=="function"?I(t):null}function Gt(t){if(t.__P&&t.__d){var e=t.__v,n=e.__e,r=[],a=[],o=j({},e);o.__v=e.__v+1,k.vnode&&k.vnode(o),ke(t.__P,o,e,t.__n,t.__P.namespaceURI,32&e.__u?[n]:null,r,n??I(e),!!(32&e.__u),a),o.__v=e.__v,o.__.__k[o.__i]=o,Ye(r,o,a),e.__e=e.__=null,o.__e!=n&&Je(o)}}function Je(t){if((t=t.__)!=null&&t.__c!=null)return t.__e=t.__c.base=null,t.__k.some(function(e){if(e!=null&&e.__e!=null)return t.__e=t.__c.base=e.__e}),Je(t)}function De(t){(!t.__d&&(t.__d=!0)&&F.push(t)&&!oe.__r++||Ue!=k.debounceRendering)&&((Ue=k.debounceRendering)||We)(oe)}function oe(){try{for(var t,e=1;F.length;)F.length>e&&F.sort(qe),t=F.shift(),e=F.length,Gt(t)}finally{F.length=oe.__r=0}}function Ge(t,e,n,r,a,o,s,l,p,u,_){var m,i,f,$,y,w,b=r&&r.__k||re,c=e.length;for(p=Kt(n,e,b,p,c),m=0;m<c;m++)(f=n.__k[m])!=null&&(i=f.__i!=-1&&b[f.__i]||ne,f.__i=m,w=ke(t,f,i,a,o,s,l,p,u,_),$=f.__e,f.ref&&i.ref!=f.ref&&(i.ref&&Se(i.ref,null,f),_.push(f.ref,f.__c||$,f)),y==null&&$!=null&&(y=$),4&f.__u?(p=Ke(f,p,t),i.__e&&(i.__e=null)):typeof f.type=="function"&&w!==void 0?p=w:$&&(p=$.nextSibling),f.__u&=-7);return n.__e=y,p}function Kt(t,e,n,r,a){var o,s,l,p,u,_=n.length,m=_,i=0;for(t.__k=new Array(a),o=0;o<a;o++)(s=e[o])!=null&&typeof s!="boolean"&&typeof s!="function"?(typeof s=="string"||typeof s=="number"||typeof s=="bigint"||s.constructor==String?s=t.__k[o]=ee(null,s,null,null,null):se(s)?s=t.__k[o]=ee(ie,{children:s},null,null,null):s.constructor===void 0&&s.__b>0?s=t.__k[o]=ee(s.type,s.props,s.key,s.ref?s.ref:null,s.__v):t.__k[o]=s,p=o+i,s.__=t,s.__b=t.__b+1,l=null,(u=s.__i=Xt(s,n,p,m))!=-1&&(m--,(l=n[u])&&(l.__u|=2)),l==null||l.__v==null?(u==-1&&(a>_?i--:a<_&&i++),typeof s.type!="function"&&(s.__u|=4)):u!=p&&(u==p-1?i--:u==p+1?i++:(u>p?i--:i++,s.__u|=4))):t.__k[o]=null;if(m)for(o=0;o<_;o++)(l=n[o])!=null&&!(2&l.__u)&&(l.__e==r&&(r=I(l)),Ze(l,l));return r}function Ke(t,e,n){var r,a;if(typeof t.type=="function"){for(r=t.__k,a=0;r&&a<r.length;a++)r[a]&&(r[a].__=t,e=Ke(r[a],e,n));return e}t.__e!=e&&(e&&t.type&&!e.parentNode&&(e=I(t)),e=n.insertBefore(t.__e,e||null));do e=e&&e.nextSibling;while(e!=null&&e.nodeType==8);return e}function Xt(t,e,n,r){var a,o,s,l=t.key,p=t.type,u=e[n],_=u!=null&&(2&u.__u)==0;if(u===null&&l==null||_&&l==u.key&&p==u.type)return n;if(r>(_?1:0)){for(a=n-1,o=n+1;a>=0||o<e.length;)if((u=e[s=a>=0?a--:o++])!=null&&!(2&u.__u)&&l==u.key&&p==u.type)return s}return-1}function Ie(t,e,n){e[0]=="-"?t.setProperty(e,n??""):t[e]=n==null?"":typeof n!="number"||Jt.test(e)?n:n+"px"}function Q(t,e,n,r,a){var o,s;e:if(e=="style")if(typeof n=="string")t.style.cssText=n;else{if(typeof r=="string"&&(t.style.cssText=r=""),r)for(e in r)n&&e in n||Ie(t.style,e,"");if(n)for(e in n)r&&n[e]==r[e]||Ie(t.style,e,n[e])}else if(e[0]=="o"&&e[1]=="n")o=e!=(e=e.replace(Ve,"$1")),s=e.toLowerCase(),e=s in t||e=="onFocusOut"||e=="onFocusIn"?s.slice(2):e.slice(2),t.l||(t.l={}),t.l[e+o]=n,n?r?n[q]=r[q]:(n[q]=ye,t.addEventListener(e,o?be:ve,o)):t.removeEventListener(e,o?be:ve,o);else{if(a=="http://www.w3.org/2000/svg")e=e.replace(/xlink(H|:h)/,"h").replace(/sName$/,"s");else if(e!="width"&&e!="height"&&e!="href"&&e!="list"&&e!="form"&&e!="tabIndex"&&e!="download"&&e!="rowSpan"&&e!="colSpan"&&e!="role"&&e!="popover"&&e in t)try{t[e]=n??"";break e}catch{}typeof n=="function"||(n==null||n===!1&&e[4]!="-"?t.removeAttribute(e):t.setAttribute(e,e=="popover"&&n==1?"":n))}}function ze(t){return function(e){if(this.l){var n=this.l[e.type+t];if(e[Z]==null)e[Z]=ye++;else if(e[Z]<n[q])return;return n(k.event?k.event(e):e)}}}function ke(t,e,n,r,a,o,s,l,p,u){var _,m,i,f,$,y,w,b,c,h,g,C,x,O,S,D,R=e.type;if(e.constructor!==void 0)return null;128&n.__u&&(p=!!(32&n.__u),o=[l=e.__e=n.__e]),(_=k.__b)&&_(e);e:if(typeof R=="function"){m=s.length;try{if(c=e.props,h=R.prototype&&R.prototype.render,g=(_=R.contextType)&&r[_.__c],C=_?g?g.props.value:_.__:r,n.__c?b=(i=e.__c=n.__c).__=i.__E:(h?e.__c=i=new R(c,C):(e.__c=i=new te(c,C),i.constructor=R,i.render=Qt),g&&g.sub(i),i.state||(i.state={}),i.__n=r,f=i.__d=!0,i.__h=[],i._sb=[]),h&&i.__s==null&&(i.__s=i.state),h&&R.getDerivedStateFromProps!=null&&(i.__s==i.state&&(i.__s=j({},i.__s)),j(i.__s,R.getDerivedStateFromProps(c,i.__s))),$=i.props,y=i.state,i.__v=e,f)h&&R.getDerivedStateFromProps==null&&i.componentWillMount!=null&&i.componentWillMount(),h&&i.componentDidMount!=null&&i.__h.push(i.componentDidMount);else{if(h&&R.getDerivedStateFromProps==null&&c!==$&&i.componentWillReceiveProps!=null&&i.componentWillReceiveProps(c,C),e.__v==n.__v||!i.__e&&i.shouldComponentUpdate!=null&&i.shouldComponentUpdate(c,i.__s,C)===!1){e.__v!=n.__v&&(i.props=c,i.state=i.__s,i.__d=!1),e.__e=n.__e,e.__k=n.__k,e.__k.some(function(B){B&&(B.__=e)}),re.push.apply(i.__h,i._sb),i._sb=[],i.__h.length&&s.push(i),l=I(n);break e}i.componentWillUpdate!=null&&i.componentWillUpdate(c,i.__s,C),h&&i.componentDidUpdate!=null&&i.__h.push(function(){i.componentDidUpdate($,y,w)})}if(i.context=C,i.props=c,i.__P=t,i.__e=!1,x=k.__r,O=0,h)i.state=i.__s,i.__d=!1,x&&x(e),_=i.render(i.props,i.state,i.context),re.push.apply(i.__h,i._sb),i._sb=[];else do i.__d=!1,x&&x(e),_=i.render(i.props,i.state,i.context),i.state=i.__s;while(i.__d&&++O<25);i.state=i.__s,i.getChildContext!=null&&(r=j(j({},r),i.getChildContext())),h&&!f&&i.getSnapshotBeforeUpdate!=null&&(w=i.getSnapshotBeforeUpdate($,y)),S=_!=null&&_.type===ie&&_.key==null?Qe(_.props.children):_,l=Ge(t,se(S)?S:[S],e,n,r,a,o,s,l,p,u),i.base=e.__e,e.__u&=-161,i.__h.length&&s.push(i),b&&(i.__E=i.__=null)}catch(B){if(s.length=m,e.__v=null,p||o!=null){if(B.then){for(e.__u|=p?160:128;l&&l.nodeType==8&&l.nextSibling;)l=l.nextSibling;o!=null&&(o[o.indexOf(l)]=null),e.__e=l}else if(o!=null)for(D=o.length;D--;)we(o[D])}else e.__e=n.__e;e.__k==null&&(e.__k=n.__k||[]),B.then||Xe(e),k.__e(B,e,n)}}else o==null&&e.__v==n.__v?(e.__k=n.__k,e.__e=n.__e):l=e.__e=Yt(n.__e,e,n,r,a,o,s,p,u);return(_=k.diffed)&&_(e),128&e.__u?void 0:l}function Xe(t){t&&(t.__c&&(t.__c.__e=!0),t.__k&&t.__k.some(Xe))}function Ye(t,e,n){for(var r=0;r<n.length;r++)Se(n[r],n[++r],n[++r]);k.__c&&k.__c(e,t),t.some(function(a){try{t=a.__h,a.__h=[],t.some(function(o){o.call(a)})}catch(o){k.__e(o,a.__v)}})}function Qe(t){return typeof t!="object"||t==null||t.__b>0?t:se(t)?t.map(Qe):t.constructor!==void 0?null:j({},t)}function Yt(t,e,n,r,a,o,s,l,p){var u,_,m,i,f,$,y,w=n.props||ne,b=e.props,c=e.type;if(c=="svg"?a="http://www.w3.org/2000/svg":c=="math"?a="http://www.w3.org/1998/Math/MathML":a||(a="http://www.w3.org/1999/xhtml"),o!=null){for(u=0;u<o.length;u++)if((f=o[u])&&"setAttribute"in f==!!c&&(c?f.localName==c:f.nodeType==3)){t=f,o[u]=null;break}}if(t==null){if(c==null)return document.createTextNode(b);t=document.createElementNS(a,c,b.is&&b),l&&(k.__m&&k.__m(e,o),l=!1),o=null}if(c==null)w===b||l&&t.data==b||(t.data=b);else{if(o=c=="textarea"&&b.defaultValue!=null?null:o&&ae.call(t.childNodes),!l&&o!=null)for(w={},u=0;u<t.attributes.length;u++)w[(f=t.attributes[u]).name]=f.value;for(u in w)f=w[u],u=="dangerouslySetInnerHTML"?m=f:u=="children"||u in b||u=="value"&&"defaultValue"in b||u=="checked"&&"defaultChecked"in b||Q(t,u,null,f,a);for(u in b)f=b[u],u=="children"?i=f:u=="dangerouslySetInnerHTML"?_=f:u=="value"?$=f:u=="checked"?y=f:l&&typeof f!="function"||w[u]===f||Q(t,u,f,w[u],a);if(_)l||m&&(_.__html==m.__html||_.__html==t.innerHTML)||(t.innerHTML=_.__html),e.__k=[];else if(m&&(t.innerHTML=""),Ge(e.type=="template"?t.content:t,se(i)?i:[i],e,n,r,c=="foreignObject"?"http://www.w3.org/1999/xhtml":a,o,s,o?o[0]:n.__k&&I(n,0),l,p),o!=null)for(u=o.length;u--;)we(o[u]);l&&c!="textarea"||(u="value",c=="progress"&&$==null?t.removeAttribute("value"):$!=null&&($!==t[u]||c=="progress"&&!$||c=="option"&&$!=w[u])&&Q(t,u,$,w[u],a),u="checked",y!=null&&y!=t[u]&&Q(t,u,y,w[u],a))}return t}function Se(t,e,n){try{if(typeof t=="function"){var r=typeof t.__u=="function";r&&t.__u(),r&&e==null||(t.__u=t(e))}else t.current=e}catch(a){k.__e(a,n)}}function Ze(t,e,n){var r,a;if(k.unmount&&k.unmount(t),(r=t.ref)&&(r.current&&r.current!=t.__e||Se(r,null,e)),(r=t.__c)!=null){if(r.componentWillUnmount)try{r.componentWillUnmount()}catch(o){k.__e(o,e)}r.base=r.__P=r.__n=null}if(r=t.__k)for(a=0;a<r.length;a++)r[a]&&Ze(r[a],e,n||typeof t.type!="function");n||we(t.__e),t.__c=t.__=t.__e=void 0}function Qt(t,e,n){return this.constructor(t,n)}function et(t,e,n){var r,a,o,s;e==document&&(e=document.documentElement),k.__&&k.__(t,e),a=(r=typeof n=="function")?null:n&&n.__k||e.__k,o=[],s=[],ke(e,t=(!r&&n||e).__k=xe(ie,null,[t]),a||ne,ne,e.namespaceURI,!r&&n?[n]:a?null:e.firstChild?ae.call(e.childNodes):null,o,!r&&n?n:a?a.__e:e.firstChild,r,s),Ye(o,t,s),t.props.children=null}ae=re.slice,k={__e:function(t,e,n,r){for(var a,o,s;e=e.__;)if((a=e.__c)&&!a.__)try{if((o=a.constructor)&&o.getDerivedStateFromError!=null&&(a.setState(o.getDerivedStateFromError(t)),s=a.__d),a.componentDidCatch!=null&&(a.componentDidCatch(t,r||{}),s=a.__d),s)return a.__E=a}catch(l){t=l}throw t}},Be=0,qt=function(t){return t!=null&&t.constructor===void 0},te.prototype.setState=function(t,e){var n;n=this.__s!=null&&this.__s!=this.state?this.__s:this.__s=j({},this.state),typeof t=="function"&&(t=t(j({},n),this.props)),t&&j(n,t),t!=null&&this.__v&&(e&&this._sb.push(e),De(this))},te.prototype.forceUpdate=function(t){this.__v&&(this.__e=!0,t&&this.__h.push(t),De(this))},te.prototype.render=ie,F=[],We=typeof Promise=="function"?Promise.prototype.then.bind(Promise.resolve()):setTimeout,qe=function(t,e){return t.__v.__b-e.__v.__b},oe.__r=0,ge=Math.random().toString(8),Z="__d"+ge,q="__a"+ge,Ve=/(PointerCapture)$|Capture$/i,ye=0,ve=ze(!1),be=ze(!0),Vt=0;var V,E,Ce,tt,J=0,ct=[],T=k,nt=T.__b,rt=T.__r,ot=T.diffed,at=T.__c,st=T.unmount,it=T.__;function Te(t,e){T.__h&&T.__h(E,t,J||e),J=0;var n=E.__H||(E.__H={__:[],__h:[]});return t>=n.__.length&&n.__.push({}),n.__[t]}function v(t){return J=1,Zt(pt,t)}function Zt(t,e,n){var r=Te(V++,2);if(r.t=t,!r.__c&&(r.__=[n?n(e):pt(void 0,e),function(l){var p=r.__N?r.__N[0]:r.__[0],u=r.t(p,l);p!==u&&(r.__N=[u,r.__[1]],r.__c.setState({}))}],r.__c=E,!E.__f)){var a=function(l,p,u){if(!r.__c.__H)return!0;var _=!1,m=r.__c.props!==l;if(r.__c.__H.__.some(function(f){if(f.__N){_=!0;var $=f.__[0];f.__=f.__N,f.__N=void 0,$!==f.__[0]&&(m=!0)}}),o){var i=o.call(this,l,p,u);return _?i||m:i}return!_||m};E.__f=!0;var o=E.shouldComponentUpdate,s=E.componentWillUpdate;E.componentWillUpdate=function(l,p,u){if(this.__e){var _=o;o=void 0,a(l,p,u),o=_}s&&s.call(this,l,p,u)},E.shouldComponentUpdate=a}return r.__N||r.__}function P(t,e){var n=Te(V++,3);!T.__s&&ut(n.__H,e)&&(n.__=t,n.u=e,E.__H.__h.push(n))}function G(t){return J=5,ce(function(){return{current:t}},[])}function ce(t,e){var n=Te(V++,7);return ut(n.__H,e)&&(n.__=t(),n.__H=e,n.__h=t),n.__}function dt(t,e){return J=8,ce(function(){return t},e)}function en(){for(var t;t=ct.shift();){var e=t.__H;if(t.__P&&e)try{e.__h.some(le),e.__h.some(Ee),e.__h=[]}catch(n){e.__h=[],T.__e(n,t.__v)}}}T.__b=function(t){E=null,nt&&nt(t)},T.__=function(t,e){t&&e.__k&&e.__k.__m&&(t.__m=e.__k.__m),it&&it(t,e)},T.__r=function(t){rt&&rt(t),V=0;var e=(E=t.__c).__H;e&&(Ce===E?(e.__h=[],E.__h=[],e.__.some(function(n){n.__N&&(n.__=n.__N),n.u=n.__N=void 0})):(e.__h.some(le),e.__h.some(Ee),e.__h=[],V=0)),Ce=E},T.diffed=function(t){ot&&ot(t);var e=t.__c;e&&e.__H&&(e.__H.__h.length&&(ct.push(e)!==1&&tt===T.requestAnimationFrame||((tt=T.requestAnimationFrame)||tn)(en)),e.__H.__.some(function(n){n.u&&(n.__H=n.u,n.u=void 0)})),Ce=E=null},T.__c=function(t,e){e.some(function(n){try{n.__h.some(le),n.__h=n.__h.filter(function(r){return!r.__||Ee(r)})}catch(r){e.some(function(a){a.__h&&(a.__h=[])}),e=[],T.__e(r,n.__v)}}),at&&at(t,e)},T.unmount=function(t){st&&st(t);var e,n=t.__c;n&&n.__H&&(n.__H.__.some(function(r){try{le(r)}catch(a){e=a}}),n.__H=void 0,e&&T.__e(e,n.__v))};var lt=typeof requestAnimationFrame=="function";function tn(t){var e,n=function(){clearTimeout(r),lt&&cancelAnimationFrame(e),setTimeout(t)},r=setTimeout(n,35);lt&&(e=requestAnimationFrame(n))}function le(t){var e=E,n=t.__c;typeof n=="function"&&(t.__c=void 0,n()),E=e}function Ee(t){var e=E;t.__c=t.__(),E=e}function ut(t,e){return!t||t.length!==e.length||e.some(function(n,r){return n!==t[r]})}function pt(t,e){return typeof e=="function"?e(t):e}var Pe="spillway.token",de=sessionStorage.getItem(Pe)||"",Le=new Set,Oe=class extends Error{constructor(e,n,r){super(r),this.status=e,this.code=n}};function Me(){return de}function W(t){de=t,t?sessionStorage.setItem(Pe,t):sessionStorage.removeItem(Pe)}function ft(t){return Le.add(t),()=>Le.delete(t)}function ue(){return de?{Authorization:`Bearer ${de}`}:{}}async function _t(t){let e="http_"+t.status,n=t.statusText||`HTTP ${t.status}`;try{let a=await t.json();a&&a.error&&({code:e,message:n}=a.error)}catch{}let r=new Oe(t.status,e,n);return t.status===401&&Le.forEach(a=>a(r)),r}async function L(t,{method:e="GET",body:n,signal:r}={}){let a={...ue()};n!==void 0&&(a["Content-Type"]="application/json");let o=await fetch(t,{method:e,headers:a,signal:r,body:n===void 0?void 0:JSON.stringify(n)});if(!o.ok)throw await _t(o);return o.json()}async function mt(t,e){let n=await fetch(t,{headers:ue(),signal:e});if(!n.ok)throw await _t(n);return URL.createObjectURL(await n.blob())}var $t=function(t,e,n,r){var a;e[0]=0;for(var o=1;o<e.length;o++){var s=e[o++],l=e[o]?(e[0]|=s?1:2,n[e[o++]]):e[++o];s===3?r[0]=l:s===4?r[1]=Object.assign(r[1]||{},l):s===5?(r[1]=r[1]||{})[e[++o]]=l:s===6?r[1][e[++o]]+=l+"":s?(a=t.apply(l,$t(t,l,n,["",null])),r.push(a),l[0]?e[0]|=2:(e[o-2]=0,e[o]=a)):r.push(l)}return r},ht=new Map;function gt(t){var e=ht.get(this);return e||(e=new Map,ht.set(this,e)),(e=$t(this,e.get(t)||(e.set(t,e=function(n){for(var r,a,o=1,s="",l="",p=[0],u=function(i){o===1&&(i||(s=s.replace(/^\s*\n\s*|\s*\n\s*$/g,"")))?p.push(0,i,s):o===3&&(i||s)?(p.push(3,i,s),o=2):o===2&&s==="..."&&i?p.push(4,i,0):o===2&&s&&!i?p.push(5,0,!0,s):o>=5&&((s||!i&&o===5)&&(p.push(o,0,s,a),o=6),i&&(p.push(o,i,0,a),o=6)),s=""},_=0;_<n.length;_++){_&&(o===1&&u(),u(_));for(var m=0;m<n[_].length;m++)r=n[_][m],o===1?r==="<"?(u(),p=[p],o=3):s+=r:o===4?s==="--"&&r===">"?(o=1,s=""):s=r+s[0]:l?r===l?l="":s+=r:r==='"'||r==="'"?l=r:r===">"?(u(),o=1):o&&(r==="="?(o=5,a=s,s=""):r==="/"&&(o<5||n[_][m+1]===">")?(u(),o===3&&(p=p[0]),o=p,(p=p[0]).push(2,0,o),o=0):r===" "||r==="	"||r===`
`||r==="\r"?(u(),o=2):s+=r),o===3&&s==="!--"&&(o=4,p=p[0])}return u(),p}(t)),e),arguments,[])).length>1?e:e[0]}var d=gt.bind(xe);function A(t){if(t==null)return"";let e=Math.max(0,Math.round(t));return e<60?`${e}s`:e<3600?`${Math.floor(e/60)}m ${e%60}s`:e<86400?`${Math.floor(e/3600)}h ${Math.floor(e%3600/60)}m`:`${Math.floor(e/86400)}d ${Math.floor(e%86400/3600)}h`}function H(t){return t==null?"":A(Date.now()/1e3-t)}function pe(t){return t==null?"":new Date(t*1e3).toLocaleTimeString()}function K(t){if(t==null)return"";let e=["B","KiB","MiB","GiB","TiB"],n=t,r=0;for(;n>=1024&&r<e.length-1;)n/=1024,r+=1;return`${n.toFixed(r?1:0)} ${e[r]}`}function Re(t){return`${Math.round((t||0)*100)}%`}function X(t){let e=[...t].sort((a,o)=>a-o),n=[],r=0;for(;r<e.length;){let a=r;for(;a+1<e.length&&e[a+1]===e[a]+1;)a+=1;n.push(a>r?`${e[r]}-${e[a]}`:`${e[r]}`),r=a+1}return n.join(",")}var vt={w:"waiting",s:"dispatched",r:"running",d:"done",f:"failed"},bt={w:"#c9ced6",s:"#8fb8e8",r:"#2f7fd8",d:"#2e9e5b",f:"#d64541"};function nn(t){return t>4e3?7:t>1e3?10:t>200?14:22}function rn(t){let e=new Int32Array(t.frames.length),n=0;return t.tasks.size.forEach((r,a)=>{e.fill(a,n,n+r),n+=r}),e}function yt({grid:t,selected:e,onSelect:n}){let r=G(null),a=G(null),[o,s]=v(800),[l,p]=v(null),u=ce(()=>rn(t),[t]),_=t.frames.length,m=nn(_),i=Math.max(1,Math.floor(o/m)),f=Math.ceil(_/i);P(()=>{let c=new ResizeObserver(h=>s(Math.floor(h[0].contentRect.width)));return c.observe(a.current),()=>c.disconnect()},[]),P(()=>{let c=r.current,h=window.devicePixelRatio||1;c.width=i*m*h,c.height=f*m*h,c.style.width=`${i*m}px`,c.style.height=`${f*m}px`;let g=c.getContext("2d");g.setTransform(h,0,0,h,0,0),g.clearRect(0,0,i*m,f*m);let C=m>8?1:.5;for(let[x,O]of Object.entries(bt)){g.fillStyle=O;for(let S=t.states.indexOf(x);S!==-1;S=t.states.indexOf(x,S+1))g.fillRect(S%i*m,Math.floor(S/i)*m,m-C,m-C)}e.size&&(g.strokeStyle="#111",g.lineWidth=2,t.frames.forEach((x,O)=>{e.has(x)&&g.strokeRect(O%i*m+1,Math.floor(O/i)*m+1,m-3,m-3)}))},[t,i,f,m,e]);let $=c=>{let h=r.current.getBoundingClientRect(),g=Math.floor((c.clientX-h.left)/m),x=Math.floor((c.clientY-h.top)/m)*i+g;return g<i&&x>=0&&x<_?x:null},y=c=>{let h=$(c);if(h===null)return p(null);let g=a.current.getBoundingClientRect();p({i:h,x:c.clientX-g.left+14,y:c.clientY-g.top+14})},w=c=>{let h=$(c);h!==null&&n(t.frames[h],c.shiftKey)},b=null;if(l){let c=u[l.i],h=t.tasks,g=h.server[c]>=0?t.servers[h.server[c]]:"\u2014",C=h.started[c]==null?null:t.time_base+h.started[c],x=h.finished[c]==null?null:t.time_base+h.finished[c];b=d`<div class="tooltip" id="grid-tooltip" style=${{left:`${l.x}px`,top:`${l.y}px`}}>
      <b>frame ${t.frames[l.i]}</b> · ${vt[t.states[l.i]]}<br />
      task ${h.index[c]} · attempt ${h.attempt[c]}<br />
      server ${g}<br />
      ${C?d`started ${pe(C)}${x?d` · took ${A(x-C)}`:""}`:"not started"}
    </div>`}return d`<div class="grid-box" ref=${a} onMouseLeave=${()=>p(null)}>
    <canvas id="frame-grid" ref=${r} data-states=${t.states} onMouseMove=${y} onClick=${w}></canvas>
    ${b}
    <div class="legend">
      ${Object.entries(vt).map(([c,h])=>d`<span><i style=${{background:bt[c]}}></i>${h}</span>`)}
      ${e.size?d`<span class="selection">selected: ${X(e)}</span>`:d`<span class="dim">click frames to select, shift-click for a range</span>`}
    </div>
  </div>`}async function xt(t,e){let n=t.getReader(),r;for(;!(r=await n.read()).done;)e(r.value)}function kt(t){let e,n,r,a=!1;return function(s){e===void 0?(e=s,n=0,r=-1):e=on(e,s);let l=e.length,p=0;for(;n<l;){a&&(e[n]===10&&(p=++n),a=!1);let u=-1;for(;n<l&&u===-1;++n)switch(e[n]){case 58:r===-1&&(r=n-p);break;case 13:a=!0;case 10:u=n;break}if(u===-1)break;t(e.subarray(p,u),r),p=n,r=-1}p===l?e=void 0:p!==0&&(e=e.subarray(p),n-=p)}}function St(t,e,n){let r=wt(),a=new TextDecoder;return function(s,l){if(s.length===0)n?.(r),r=wt();else if(l>0){let p=a.decode(s.subarray(0,l)),u=l+(s[l+1]===32?2:1),_=a.decode(s.subarray(u));switch(p){case"data":r.data=r.data?r.data+`
`+_:_;break;case"event":r.event=_;break;case"id":t(r.id=_);break;case"retry":let m=parseInt(_,10);isNaN(m)||e(r.retry=m);break}}}}function on(t,e){let n=new Uint8Array(t.length+e.length);return n.set(t),n.set(e,t.length),n}function wt(){return{data:"",event:"",id:"",retry:void 0}}var an=function(t,e){var n={};for(var r in t)Object.prototype.hasOwnProperty.call(t,r)&&e.indexOf(r)<0&&(n[r]=t[r]);if(t!=null&&typeof Object.getOwnPropertySymbols=="function")for(var a=0,r=Object.getOwnPropertySymbols(t);a<r.length;a++)e.indexOf(r[a])<0&&Object.prototype.propertyIsEnumerable.call(t,r[a])&&(n[r[a]]=t[r[a]]);return n},fe="text/event-stream",sn=1e3,Ct="last-event-id";function je(t,e){var{signal:n,headers:r,onopen:a,onmessage:o,onclose:s,onerror:l,openWhenHidden:p,fetch:u}=e,_=an(e,["signal","headers","onopen","onmessage","onclose","onerror","openWhenHidden","fetch"]);return new Promise((m,i)=>{let f=Object.assign({},r);f.accept||(f.accept=fe);let $;function y(){$.abort(),document.hidden||C()}p||document.addEventListener("visibilitychange",y);let w=sn,b=0;function c(){document.removeEventListener("visibilitychange",y),window.clearTimeout(b),$.abort()}n?.addEventListener("abort",()=>{c(),m()});let h=u??window.fetch,g=a??ln;async function C(){var x;$=new AbortController;try{let O=await h(t,Object.assign(Object.assign({},_),{headers:f,signal:$.signal}));await g(O),await xt(O.body,kt(St(S=>{S?f[Ct]=S:delete f[Ct]},S=>{w=S},o))),s?.(),c(),m()}catch(O){if(!$.signal.aborted)try{let S=(x=l?.(O))!==null&&x!==void 0?x:w;window.clearTimeout(b),b=window.setTimeout(C,S)}catch(S){c(),i(S)}}}C()})}function ln(t){let e=t.headers.get("content-type");if(!e?.startsWith(fe))throw new Error(`Expected content-type to be ${fe}, Actual: ${e}`)}var Ae=new Set,z=null,Et=!1,Ne=new Set,_e=class extends Error{};function Y(t){Et=t,Ne.forEach(e=>e(t))}function cn(t){Ae.forEach(e=>e(t))}function Tt(t){z&&z.abort(),z=new AbortController,je("/api/v1/events",{headers:ue(),signal:z.signal,openWhenHidden:!0,async onopen(e){if(e.status===401)throw t(),new _e("unauthorized");if(!e.ok)throw new Error(`event stream: HTTP ${e.status}`);Y(!0)},onmessage(e){if(!e.event)return;let n=e.data?JSON.parse(e.data):{};cn({type:e.event,...n})},onclose(){throw Y(!1),new Error("event stream closed")},onerror(e){if(Y(!1),e instanceof _e)throw e;return 2e3}}).catch(()=>Y(!1))}function Pt(){z&&z.abort(),z=null,Y(!1)}function Lt(){let[t,e]=v(Et);return P(()=>(Ne.add(e),()=>Ne.delete(e)),[]),t}function U(t,e,n,r=500){P(()=>{let a={timer:null,last:0,running:!1,again:!1},o=!0,s=async()=>{if(o){if(a.running){a.again=!0;return}a.running=!0,a.last=Date.now();try{await t()}finally{a.running=!1,a.again&&o&&(a.again=!1,l())}}},l=()=>{if(a.timer)return;let u=Math.max(0,a.last+r-Date.now());a.timer=setTimeout(()=>{a.timer=null,s()},u)},p=u=>{(u.type==="hello"||e(u))&&l()};return Ae.add(p),s(),()=>{o=!1,Ae.delete(p),clearTimeout(a.timer),a.timer=null}},n)}function N({state:t}){return d`<span class=${`badge state-${t}`}>${t}</span>`}function he({job:t,wide:e}){let n=t.progress,r=n.tasks,a=Math.max(1,r.waiting+r.dispatched+r.running+r.done+r.failed),o=(s,l,p)=>s?d`<span class=${l} style=${{width:`${100*s/a}%`}} title=${`${s} ${p}`}></span>`:null;return d`<div class=${e?"progress wide":"progress"}>
    <div class="bar">
      ${o(r.done,"done","tasks done")}${o(r.running+r.dispatched,"running","tasks running")}
      ${o(r.failed,"failed","tasks failed")}
    </div>
    <span class="counts">
      <b>${n.frames_done}/${n.frames_total}</b>
      <span class="c-done" title="tasks done">${r.done}✓</span>
      <span class="c-running" title="tasks running">${r.running+r.dispatched}▶</span>
      <span class="c-failed" title="tasks failed">${r.failed}✗</span>
      <span class="c-waiting" title="tasks waiting">${r.waiting}◌</span>
    </span>
  </div>`}function M({error:t}){return t?d`<div class="error" role="alert">${t.message||String(t)}</div>`:null}var me=null;function $e(t,e="Confirm"){return new Promise(n=>me&&me({message:t,confirmLabel:e,resolve:n}))}function Ot(){let[t,e]=v(null);if(P(()=>(me=e,()=>me=null),[]),!t)return null;let n=r=>{e(null),t.resolve(r)};return d`<div class="overlay" onClick=${()=>n(!1)}>
    <div class="dialog" role="dialog" onClick=${r=>r.stopPropagation()}>
      <p>${t.message}</p>
      <div class="buttons">
        <button id="confirm-cancel" onClick=${()=>n(!1)}>Keep</button>
        <button id="confirm-ok" class="danger" onClick=${()=>n(!0)}>${t.confirmLabel}</button>
      </div>
    </div>
  </div>`}var Rt=50,dn=["","queued","running","paused","done","failed","cancelled"],un=["","builtin","povray","blender"],pn=[["name","Name"],["state","State"],[null,"Progress"],[null,"Package"],[null,"Placement"],["priority","Priority"],[null,"Owner"],["created","Age"],[null,"ETA"]];function Fe(t){return t.origin_job_id?`\u2190 from ${t.origin_site}`:t.placement==="local"?"local":`\u2192 ${t.placement}${t.remote_job_id?` (${t.remote_job_id})`:""}`}function fn(t,e,n){let r=new URLSearchParams({limit:Rt,offset:n,sort:e});for(let[a,o]of Object.entries(t))o&&r.set(a,o);return r.toString()}var Mt=["state","package","placement","owner","q"];function jt({peers:t,initial:e}){let[n,r]=v(Object.fromEntries(Mt.map(c=>[c,e[c]||""]))),[a,o]=v(e.sort||"-created"),[s,l]=v(Number(e.offset)||0),[p,u]=v(null),[_,m]=v(null),[i,f]=v(Date.now()/1e3),$=fn(n,a,s);P(()=>{let c=new URLSearchParams;for(let g of Mt)n[g]&&c.set(g,n[g]);a!=="-created"&&c.set("sort",a),s&&c.set("offset",s);let h=`#/jobs${c.toString()?`?${c}`:""}`;location.hash!==h&&history.replaceState(null,"",h)},[$]),U(async()=>{try{u(await L(`/api/v1/jobs?${$}`)),f(Date.now()/1e3),m(null)}catch(c){m(c)}},c=>c.type==="change"&&(c.all||c.jobs.length>0),[$],1e3);let y=c=>h=>{r({...n,[c]:h.target.value}),l(0)},w=c=>{o(a===`-${c}`?c:`-${c}`),l(0)},b=p&&p.page;return d`<section id="jobs-view">
    <div class="filters">
      <input id="job-search" type="search" placeholder="Search name or id" value=${n.q} onInput=${y("q")} />
      <label>State <select id="filter-state" value=${n.state} onChange=${y("state")}>
        ${dn.map(c=>d`<option value=${c}>${c||"any"}</option>`)}
      </select></label>
      <label>Package <select id="filter-package" value=${n.package} onChange=${y("package")}>
        ${un.map(c=>d`<option value=${c}>${c||"any"}</option>`)}
      </select></label>
      <label>Placement <select id="filter-placement" value=${n.placement} onChange=${y("placement")}>
        <option value="">any</option><option value="local">local</option>
        <option value="forwarded">forwarded to a peer</option><option value="accepted">accepted from a peer</option>
        ${[...new Set([...t||[],...e.placement?[e.placement]:[]])].filter(c=>!["local","forwarded","accepted"].includes(c)).map(c=>d`<option value=${c}>peer ${c}</option>`)}
      </select></label>
      <input id="filter-owner" placeholder="Owner" value=${n.owner} onInput=${y("owner")} size="10" />
    </div>
    <${M} error=${_} />
    <table class="jobs">
      <thead><tr>
        ${pn.map(([c,h])=>c?d`<th class="sortable" onClick=${()=>w(c)}>${h}${a===c?" \u25B2":a===`-${c}`?" \u25BC":""}</th>`:d`<th>${h}</th>`)}
      </tr></thead>
      <tbody>
        ${p&&p.jobs.map(c=>d`<tr class="job-row" data-job=${c.id} key=${c.id}>
            <td><a href=${`#/job/${c.id}`}>${c.name}</a><div class="dim mono">${c.id}</div></td>
            <td><${N} state=${c.state} />
              ${c.why_waiting&&d`<div class="dim small why">${c.why_waiting}</div>`}
              ${c.state==="failed"&&c.error&&d`<div class="error small">${c.error}</div>`}</td>
            <td><${he} job=${c} /></td>
            <td class="mono">${c.requirement}</td>
            <td class="placement">${Fe(c)}${c.remote&&c.remote.frames_done!=null?d`<div class="dim small">remote ${c.remote.state||""} ${c.remote.frames_done}/${c.frame_count}</div>`:null}</td>
            <td>${c.priority}</td>
            <td>${c.owner}</td>
            <td title=${new Date(c.created_at*1e3).toLocaleString()}>${A(i-c.created_at)}</td>
            <td>${c.eta_s!=null?A(c.eta_s):""}</td>
          </tr>`)}
      </tbody>
    </table>
    ${p&&p.jobs.length===0&&d`<p class="empty">No jobs match.</p>`}
    ${b&&d`<div class="pager">
      <button disabled=${s===0} onClick=${()=>l(Math.max(0,s-Rt))}>‹ Newer</button>
      <span id="page-info">${b.total?`${s+1}\u2013${s+p.jobs.length} of ${b.total}`:"0 jobs"}</span>
      <button disabled=${b.next_offset==null} onClick=${()=>l(b.next_offset)}>Older ›</button>
    </div>`}
  </section>`}var _n=256*1024;function At(t){return typeof t=="object"&&t!==null?t.attempt:t}function Nt({jobId:t,task:e,features:n,onClose:r}){let[a,o]=v(null),[s,l]=v({text:"",meta:null,error:null}),p=G(null),u=e.attempt>0;P(()=>{if(!n.logs||!u)return;let i=new AbortController,f="",$=!0;return(async()=>{let y=0,w=`/api/v1/jobs/${t}/tasks/${e.index}/log`;for(;$;){let b=new URLSearchParams({offset:y});a!=null&&b.set("attempt",a),y>0&&b.set("wait",10);let c;try{c=await L(`${w}?${b}`,{signal:i.signal})}catch(h){$&&l({text:f,meta:null,error:h});return}if(f=(f+c.text).slice(-_n),l({text:f,meta:c,error:null}),c.complete)return;y=c.next_offset}})(),()=>{$=!1,i.abort()}},[t,e.index,a,n.logs,u]),P(()=>{p.current&&(p.current.scrollTop=p.current.scrollHeight)},[s.text]);let _=s.meta,m=n.logs?s.text:e.log_tail||"";return d`<section class="log-panel" id="log-panel">
    <header>
      <b>Log of task ${e.index}</b> (frames ${e.frames}) · ${e.state}
      ${_&&_.attempts&&_.attempts.length>1&&d`<select id="log-attempt" value=${a??_.attempt} onChange=${i=>o(Number(i.target.value))}>
        ${_.attempts.map(i=>d`<option value=${At(i)}>attempt ${At(i)}</option>`)}
      </select>`}
      ${_&&d`<span class="dim"> on ${_.server||"\u2014"}${_.complete?"":" \xB7 live"}</span>`}
      ${_&&_.truncated_bytes?d`<span class="dim"> · first ${_.truncated_bytes} bytes not kept</span>`:null}
      <button class="close" onClick=${r}>×</button>
    </header>
    ${e.error&&d`<div class="error" id="task-error">${e.error}</div>`}
    ${!n.logs&&d`<div class="dim small">The last lines the server reported for this task.</div>`}
    ${s.error&&d`<div class="error">${s.error.message}</div>`}
    <pre ref=${p} id="log-text">${u?m||"(no output)":"(not started yet)"}</pre>
  </section>`}function mn(t){return(t.latest||[]).map(e=>({frame:e.frame,version:e.at,preview:e.preview}))}function Ht(t){let[e,n]=v({url:null,error:null});return P(()=>{if(!t)return;let r=new AbortController,a=null;return mt(t,r.signal).then(o=>{a=o,n({url:o,error:null})}).catch(o=>o.name!=="AbortError"&&n({url:null,error:o})),()=>{r.abort(),a&&URL.revokeObjectURL(a)}},[t]),e}function Ft({jobId:t,item:e,previews:n,large:r,onOpen:a}){let o=n&&e.preview?"/preview":"",{url:s,error:l}=Ht(`/api/v1/jobs/${t}/frames/${e.frame}${o}?v=${e.version}`);return d`<figure class=${r?"latest":"thumb"} data-frame=${e.frame} onClick=${()=>a(e.frame)}>
    ${s?d`<img src=${s} alt=${`frame ${e.frame}`} />`:d`<div class="placeholder">${l?"no preview":"\u2026"}</div>`}
    <figcaption>frame ${e.frame}</figcaption>
  </figure>`}function Ut({jobId:t,grid:e,previews:n}){let[r,a]=v(null),o=mn(e);if(!o.length)return d`<p class="dim">No finished frames yet.</p>`;let[s,...l]=o;return d`<div class="media">
    <${Ft} jobId=${t} item=${s} previews=${n} large=${!0} onOpen=${a} key=${`L${s.frame}-${s.version}`} />
    <div class="thumbs">
      ${l.map(p=>d`<${Ft} jobId=${t} item=${p} previews=${n} onOpen=${a} key=${`${p.frame}-${p.version}`} />`)}
    </div>
    ${r!=null&&d`<${hn} jobId=${t} frame=${r} onClose=${()=>a(null)} />`}
  </div>`}function hn({jobId:t,frame:e,onClose:n}){let{url:r,error:a}=Ht(`/api/v1/jobs/${t}/frames/${e}`);return d`<div class="overlay" id="full-frame" onClick=${n}>
    <div class="frame-view">
      ${r?d`<img src=${r} alt=${`frame ${e} full size`} />`:d`<p>${a?a.message:"loading\u2026"}</p>`}
      <p>frame ${e} · click to close</p>
    </div>
  </div>`}var He=100,$n=["queued","running","paused"];function gn({job:t,selected:e,clearSelection:n,onDone:r}){let[a,o]=v(String(t.priority)),[s,l]=v(!1),[p,u]=v(null),_=t.placement==="local",m=async($,y,w,b)=>{if(!(w&&!await $e(w,b))){l(!0);try{await L(`/api/v1/jobs/${t.id}/${$}`,{method:"POST",body:y}),u(null),$==="retry"&&y&&n(),r()}catch(c){u(c)}finally{l(!1)}}},i=t.progress.tasks,f=$n.includes(t.state);return d`<div class="controls">
    ${["queued","running"].includes(t.state)&&d`<button id="btn-pause" disabled=${s} onClick=${()=>m("pause")}>Pause</button>`}
    ${t.state==="paused"&&d`<button id="btn-resume" disabled=${s} onClick=${()=>m("resume")}>Resume</button>`}
    ${f&&d`<button id="btn-cancel" class="danger" disabled=${s}
      onClick=${()=>m("cancel",void 0,`Cancel job ${t.name}? Frames still rendering are stopped and their work is lost.`,"Cancel job")}>Cancel…</button>`}
    ${_&&i.failed>0&&d`<button id="btn-retry" disabled=${s} onClick=${()=>m("retry")}>Retry ${i.failed} failed</button>`}
    ${_&&e.size>0&&d`<button id="btn-requeue" disabled=${s}
      onClick=${()=>m("retry",{frames:X(e)},`Render frames ${X(e)} again? Their current output is replaced.`,"Render again")}>
      Requeue ${e.size} selected</button>`}
    ${f&&d`<span class="priority">Priority
      <input id="priority-input" type="number" min="0" max="100" value=${a} onInput=${$=>o($.target.value)} />
      <button id="btn-priority" disabled=${s||a===String(t.priority)}
        onClick=${()=>m("priority",{priority:Number(a)})}>Set</button></span>`}
    <${M} error=${p} />
  </div>`}function vn({job:t}){let e=t.profile,n=[["Owner",t.owner],["Package",t.requirement],["Frames",`${t.frames} (${t.frame_count}, chunks of ${t.chunk_size})`],["Scene",t.scene],["Submitted",`${new Date(t.created_at*1e3).toLocaleString()} (${H(t.created_at)} ago)`],["ETA",t.eta_s!=null?A(t.eta_s):"\u2014"],["Time per frame",t.seconds_per_frame!=null?`${t.seconds_per_frame.toFixed(1)} s`:"\u2014"],["Needs",[e.min_memory_mb?`${e.min_memory_mb} MiB`:null,e.min_cores>1?`${e.min_cores} cores`:null,e.gpu?"a GPU":null,(e.tags||[]).length?`tags ${e.tags.join(", ")}`:null].filter(Boolean).join(", ")||"any server"],["Attempts",`up to ${e.max_attempts}, ${e.task_timeout_s} s per task${e.max_servers?`, at most ${e.max_servers} servers`:""}`],["Settings",Object.entries(t.settings||{}).map(([r,a])=>`${r}=${JSON.stringify(a)}`).join(" ")||"\u2014"],["Output",t.storage_dir]];return d`<dl class="facts">${n.map(([r,a])=>d`<dt>${r}</dt><dd>${a}</dd>`)}</dl>`}function bn({job:t}){if(t.origin_job_id)return d`<div class="fed" id="fed-accepted">Accepted from <b>${t.origin_site}</b>, where it is job <span class="mono">${t.origin_job_id}</span>.</div>`;if(t.placement==="local")return null;let e=t.remote||{},n=t.transfer||{};return d`<div class="fed" id="fed-forwarded">
    Forwarded to <b>${t.placement}</b>${t.placement_reason?d` — ${t.placement_reason}`:""}.<br />
    Remote job <span class="mono" id="remote-job-id">${t.remote_job_id||e.job_id||"\u2014"}</span>
    · remote state ${e.state||"\u2014"} · <span id="remote-frames">${e.frames_done??0}/${t.frame_count}</span> frames done there
    ${e.last_contact_at?d` · last heard ${H(e.last_contact_at)} ago`:""}<br />
    ${t.peers_tried&&t.peers_tried.length>1?d`Offered to ${t.peers_tried.join(", ")}.<br />`:""}
    Transfer: ${K(n.bytes_sent||0)} sent, ${n.blobs_sent??0} blobs sent, ${n.blobs_skipped??0} already there
    ${e.forward_state?d` · ${e.forward_state}`:""}
  </div>`}function yn({jobId:t,page:e,filter:n,setFilter:r,offset:a,setOffset:o,onLog:s}){return d`<section>
    <h3>Tasks
      <select id="task-filter" value=${n} onChange=${l=>{r(l.target.value),o(0)}}>
        <option value="">all</option>
        ${["waiting","dispatched","running","done","failed"].map(l=>d`<option value=${l}>${l}</option>`)}
      </select>
    </h3>
    <table class="tasks">
      <thead><tr><th>#</th><th>Frames</th><th>State</th><th>Attempt</th><th>Server</th><th>Started</th><th>Took</th><th>Error</th><th></th></tr></thead>
      <tbody>
        ${e&&e.tasks.map(l=>d`<tr class="task-row" data-task=${l.index} data-state=${l.state} key=${l.id}>
          <td>${l.index}</td><td class="mono">${l.frames}</td><td><${N} state=${l.state} /></td>
          <td>${l.attempt}${l.failures?d` <span class="c-failed">(${l.failures} failed)</span>`:""}</td>
          <td>${l.server||"\u2014"}</td><td>${pe(l.started_at)}</td>
          <td>${l.started_at&&l.finished_at?A(l.finished_at-l.started_at):""}</td>
          <td class="error small">${l.error}</td>
          <td><button class="link log-btn" onClick=${()=>s(l)}>log</button></td>
        </tr>`)}
      </tbody>
    </table>
    ${e&&e.tasks_page.total>He&&d`<div class="pager">
      <button disabled=${a===0} onClick=${()=>o(Math.max(0,a-He))}>‹</button>
      ${a+1}–${a+e.tasks.length} of ${e.tasks_page.total}
      <button disabled=${e.tasks_page.next_offset==null} onClick=${()=>o(e.tasks_page.next_offset)}>›</button>
    </div>`}
  </section>`}function wn(t,e){let[n,r]=v({job:null,grid:null,tasks:null,error:null}),a=dt(async()=>{try{let[o,s,l]=await Promise.all([L(`/api/v1/jobs/${t}?tasks=0`),L(`/api/v1/jobs/${t}/grid`),L(`/api/v1/jobs/${t}/tasks?${e}`)]);r({job:o.job,grid:s,tasks:l,error:null})}catch(o){r(s=>({...s,error:o}))}},[t,e]);return U(a,o=>o.type==="change"&&(o.all||o.jobs.includes(t)),[t,e],700),[n,a]}function Dt({jobId:t,features:e}){let[n,r]=v(""),[a,o]=v(0),[s,l]=v(new Set),[p,u]=v(null),[_,m]=v(null),i=new URLSearchParams({offset:a,limit:He,...n?{state:n}:{}}).toString(),[{job:f,grid:$,tasks:y,error:w},b]=wn(t,i),c=(g,C)=>{let x=new Set(s);if(C&&p!=null){let O=$.frames.indexOf(p),S=$.frames.indexOf(g);for(let D=Math.min(O,S);D<=Math.max(O,S);D+=1)x.add($.frames[D])}else x.has(g)?x.delete(g):x.add(g);u(g),l(x)};if(!f)return d`<section><${M} error=${w} />${!w&&d`<p>Loading…</p>`}</section>`;let h=_&&(y&&y.tasks.find(g=>g.id===_.id)||_);return d`<section id="job-view" data-job=${f.id} data-state=${f.state}>
    <h2><a href="#/jobs">Jobs</a> › ${f.name} <${N} state=${f.state} /> <span class="dim mono">${f.id}</span></h2>
    <${M} error=${w} />
    <${gn} job=${f} selected=${s} clearSelection=${()=>l(new Set)} onDone=${b} key=${`${f.id}-${f.priority}`} />
    <div class="summary">
      <${he} job=${f} wide=${!0} />
      ${f.why_waiting&&d`<div class="why" id="why-waiting">Waiting: ${f.why_waiting}</div>`}
      ${f.error&&d`<div class="error" id="job-error">${f.error}</div>`}
      <div class="placement">Placement: ${Fe(f)} · priority ${f.priority}</div>
      <${bn} job=${f} />
      ${(f.after||[]).length>0&&d`<div class="after" id="job-after">After:
        ${f.after.map(g=>d`<span class=${g.met?"c-done":"dim"}> <a href=${`#/job/${g.job_id}`}>${g.name||g.job_id}</a>
          (${g.kind==="end"?"ends":g.kind==="frames"?"frame by frame":"done"}; ${g.state} ${g.frames_done}/${g.frame_count})${g.met?" \u2713":""}</span>`)}
      </div>`}
    </div>
    <div class="columns">
      <div class="main-col">
        <h3>Frames</h3>
        ${$&&d`<${yt} grid=${$} selected=${s} onSelect=${c} />`}
        <h3>Latest frames</h3>
        ${$&&d`<${Ut} jobId=${f.id} grid=${$} previews=${e.previews} />`}
      </div>
      <div class="side-col"><h3>Profile</h3><${vn} job=${f} /></div>
    </div>
    ${h&&d`<${Nt} jobId=${f.id} task=${h} features=${e} onClose=${()=>m(null)} key=${`${h.id}-${h.attempt}`} />`}
    <${yn} jobId=${f.id} page=${y} filter=${n} setFilter=${r} offset=${a} setOffset=${o} onLog=${m} />
  </section>`}function xn(t){let e=[];t.preference!=null&&e.push(`preference ${t.preference}`),t.cost!=null&&e.push(`cost ${t.cost}`);let n=t.policy||{};return n.max_slots&&e.push(`at most ${n.max_slots} slots`),n.max_queued_jobs&&e.push(`${n.max_queued_jobs} queued jobs`),n.packages&&e.push(`packages ${n.packages.join(", ")}`),n.hours&&e.push(`hours ${n.hours}`),e.join(" \xB7 ")}function It(){let[t,e]=v(null),[n,r]=v(null);U(async()=>{try{e((await L("/api/v1/peers")).peers),r(null)}catch(o){r(o)}},o=>o.type==="tick"||o.type==="change"&&o.all,[],1e3);let a=(t||[]).some(o=>o.bytes_sent!=null);return d`<section id="peers-view">
    <${M} error=${n} />
    <table class="peers">
      <thead><tr><th>Peer</th><th>Link</th><th>Capacity</th><th>Servers</th><th>Terms</th><th>Forwarded to</th><th>Accepted from</th>${a&&d`<th>Moved</th>`}<th>Last error</th></tr></thead>
      <tbody>
        ${t&&t.map(o=>d`<tr class="peer-row" data-peer=${o.name} key=${o.name}>
          <td><b>${o.name}</b><div class="dim small mono">${o.url}</div></td>
          <td><${N} state=${o.state} />${o.last_seen?d`<div class="dim small">heard ${H(o.last_seen)} ago</div>`:""}</td>
          <td>${o.capacity?d`${o.capacity.free_slots} free slots on ${o.capacity.servers} servers · queue ${o.capacity.queue}`:d`<span class="dim">no advert yet</span>`}</td>
          <td class="small">${(o.servers||[]).map(s=>d`<div>${s.name} <span class="dim">${s.status} ${s.slots-s.free_slots}/${s.slots} · ${Object.keys(s.packages).join(", ")}</span></div>`)}</td>
          <td class="small">${xn(o)}</td>
          <td><a href=${`#/jobs?placement=${o.name}`}>${o.jobs_forwarded??0} jobs</a>${o.forward===!1?d`<div class="dim small">not allowed</div>`:""}</td>
          <td>${o.jobs_accepted??0} jobs${o.accept===!1?d`<div class="dim small">not allowed</div>`:""}</td>
          ${a&&d`<td class="small">${K(o.bytes_sent)} sent · ${K(o.bytes_received)} received</td>`}
          <td class="error small">${o.last_error||""}</td>
        </tr>`)}
      </tbody>
    </table>
    ${t&&t.length===0&&d`<p class="empty">This site has no peers configured ([[peers]] in its config).</p>`}
  </section>`}function zt(){let[t,e]=v(null),[n,r]=v(null),a=async()=>{try{e((await L("/api/v1/servers")).servers),r(null)}catch(s){r(s)}};U(a,s=>s.type==="tick"||s.type==="change"&&s.servers,[],1e3);let o=async(s,l)=>{try{if(l==="forget"){if(!await $e(`Forget render server ${s.name}? It registers again if it reconnects.`,"Forget"))return;await L(`/api/v1/servers/${s.id}`,{method:"DELETE"})}else await L(`/api/v1/servers/${s.id}/${l}`,{method:"POST"});await a()}catch(p){r(p)}};return d`<section id="servers-view">
    <${M} error=${n} />
    <table class="servers">
      <thead><tr><th>Name</th><th>Status</th><th>Rendering</th><th>Slots</th><th>Last hour</th><th>Hardware</th><th>Packages</th><th>Last error</th><th></th></tr></thead>
      <tbody>
        ${t&&t.map(s=>d`<tr class="server-row" data-server=${s.name} key=${s.id}>
          <td><b>${s.name}</b><div class="dim small">${s.host}</div></td>
          <td><${N} state=${s.status} />${s.last_heartbeat?d`<div class="dim small">seen ${H(s.last_heartbeat)} ago</div>`:""}</td>
          <td>${(s.current||[]).map(l=>d`<div><a href=${`#/job/${l.job}`} class="mono">${l.job}</a> <span class="dim">frames ${l.frames}</span></div>`)}</td>
          <td>${s.slots-s.free_slots}/${s.slots} busy</td>
          <td><div class="util"><span style=${{width:Re(s.utilisation)}}></span></div>${Re(s.utilisation)}</td>
          <td class="small">${s.cores} cores · ${Math.round(s.memory_mb/1024)} GiB${s.gpus.length?` \xB7 ${s.gpus.join(", ")}`:""}<div class="dim">${s.os} ${s.cpu_model}</div></td>
          <td class="small mono">${Object.entries(s.packages).map(([l,p])=>`${l} ${p}`).join(", ")}${s.tags.length?d`<div class="dim">tags ${s.tags.join(", ")}</div>`:""}</td>
          <td class="error small">${s.last_error?d`${s.last_error.error}<div class="dim">${H(s.last_error.at)} ago</div>`:""}</td>
          <td class="actions">
            ${s.status==="disabled"?d`<button class="btn-enable" onClick=${()=>o(s,"enable")}>Enable</button>`:d`<button class="btn-disable" onClick=${()=>o(s,"disable")}>Disable</button>`}
            ${s.status==="offline"&&d`<button class="danger" onClick=${()=>o(s,"forget")}>Forget…</button>`}
          </td>
        </tr>`)}
      </tbody>
    </table>
    ${t&&t.length===0&&d`<p class="empty">No render server has connected yet: start one with <code>spillway render-server --agent URL</code>.</p>`}
  </section>`}function Bt(t){let[e,n=""]=t.replace(/^#/,"").split("?"),r=e.split("/").filter(Boolean),a=Object.fromEntries(new URLSearchParams(n));return r[0]==="job"&&r[1]?{view:"job",id:decodeURIComponent(r[1]),params:a}:r[0]==="servers"||r[0]==="peers"?{view:r[0],params:a}:{view:"jobs",params:a}}function kn(){let[t,e]=v(Bt(location.hash));return P(()=>{let n=()=>e(Bt(location.hash));return window.addEventListener("hashchange",n),()=>window.removeEventListener("hashchange",n)},[]),t}function Wt(t){let e=Object.keys(t&&t.paths||{});return{logs:e.some(n=>n.startsWith("/api/v1/jobs/")&&n.endsWith("/log")),previews:e.some(n=>n.startsWith("/api/v1/jobs/")&&n.endsWith("/preview"))}}function Sn({site:t,onLogin:e}){let[n,r]=v(""),[a,o]=v(null);return d`<form class="login" id="login" onSubmit=${async l=>{l.preventDefault(),W(n.trim());try{await L("/api/v1/jobs?limit=1"),e()}catch(p){W(""),o(p.status===401?new Error("That token was not accepted; check it and try again."):p)}}}>
    <h2>Spillway site ${t}</h2>
    <p>This agent needs a client token (one of <code>[auth] client_tokens</code> in its config).
      It is kept for this browser tab only.</p>
    <input id="token-input" type="password" autocomplete="current-password" placeholder="Token" value=${n}
      onInput=${l=>r(l.target.value)} autofocus />
    <button id="token-submit" type="submit">Sign in</button>
    <${M} error=${a} />
  </form>`}function Cn({site:t,route:e,authed:n,onSignOut:r}){let a=Lt(),o=(s,l)=>d`<a href=${`#/${s}`} id=${`nav-${s}`} class=${e.view===s||s==="jobs"&&e.view==="job"?"active":""}>${l}</a>`;return d`<nav>
    <span class="site">Spillway · <b id="site-name">${t}</b></span>
    ${o("jobs","Jobs")}${o("servers","Render servers")}${o("peers","Peers")}
    <span class="spacer"></span>
    <span id="live-status" class=${a?"live on":"live off"}>${a?"\u25CF live":"\u25CB reconnecting"}</span>
    ${n&&Me()&&d`<button class="link" id="sign-out" onClick=${r}>sign out</button>`}
  </nav>`}function En(){let t=kn(),[e,n]=v(null),[r,a]=v({logs:!1,previews:!1}),[o,s]=v(!1),[l,p]=v([]),[u,_]=v(null);if(P(()=>(L("/api/v1/health").then(f=>{n(f),s(!f.client_auth||!!Me())}).catch(_),L("/api/v1/openapi.json").then(f=>a(Wt(f))).catch(()=>a(Wt(null))),ft(()=>{W(""),s(!1)})),[]),P(()=>{if(o)return Tt(()=>{W(""),s(!1)}),L("/api/v1/peers").then(f=>p(f.peers.map($=>$.name))).catch(()=>p([])),Pt},[o]),P(()=>{e&&(document.title=`Spillway \xB7 ${e.site}`)},[e]),u)return d`<main><${M} error=${u} /></main>`;if(!e)return d`<main><p>Connecting…</p></main>`;if(!o)return d`<main><${Sn} site=${e.site} onLogin=${()=>s(!0)} /></main>`;let m=()=>{W(""),s(!1)},i;return t.view==="job"?i=d`<${Dt} jobId=${t.id} features=${r} key=${t.id} />`:t.view==="servers"?i=d`<${zt} />`:t.view==="peers"?i=d`<${It} />`:i=d`<${jt} peers=${l} initial=${t.params} key=${JSON.stringify(t.params)} />`,d`<${Cn} site=${e.site} route=${t} authed=${o} onSignOut=${m} />
    <main>${i}</main>
    <${Ot} />`}et(d`<${En} />`,document.getElementById("app"));
